/** Where the SDK reports what happens in the background (reconnects, lost leases). */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void
  info(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  error(message: string, fields?: Record<string, unknown>): void
}

type Level = keyof Logger

const levels: readonly Level[] = ['debug', 'info', 'warn', 'error']

/**
 * A logger that writes one JSON object per line on stderr — time, level,
 * message and the fields (lines about a run carry runId, job, attempt and
 * traceId) — for lines at `level` or above.
 */
export function jsonLogger(level: Level = 'warn'): Logger {
  const write = (lineLevel: Level) =>
    levels.indexOf(lineLevel) < levels.indexOf(level)
      ? () => {}
      : (message: string, fields?: Record<string, unknown>) =>
          process.stderr.write(
            JSON.stringify({ time: new Date().toISOString(), level: lineLevel, service: 'stackshift-sdk', msg: message, ...fields }) + '\n',
          )
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') }
}

/** The default logger: warnings and errors as JSON lines on stderr. Pass your own to change that. */
export const defaultLogger: Logger = jsonLogger('warn')
