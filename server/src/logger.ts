import { pino, type Logger } from 'pino'

export type { Logger }

/** The one logger: JSON lines on stdout, ISO timestamps, level from configuration. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'stackshift-server', pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  })
}
