/** Where the SDK reports what happens in the background (reconnects, lost leases). */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void
  info(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  error(message: string, fields?: Record<string, unknown>): void
}

/** The default logger: warnings and errors on stderr, nothing else. Pass your own to change that. */
export const defaultLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: (message, fields) => console.warn(`[stackshift] ${message}`, fields ?? ''),
  error: (message, fields) => console.error(`[stackshift] ${message}`, fields ?? ''),
}
