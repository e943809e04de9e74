import { isSpanContextValid, trace } from '@opentelemetry/api'
import { type DestinationStream, pino, type Logger } from 'pino'
import type { TraceContext } from './core/run.js'

export type { Logger }

/**
 * The one logger: JSON lines on stdout, ISO timestamps, level from
 * configuration. A line logged while a span is active carries its trace and
 * span ids. `destination` replaces stdout (tools and tests capture lines).
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'stackshift-server', pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin: () => {
      const spanContext = trace.getActiveSpan()?.spanContext()
      return spanContext && isSpanContextValid(spanContext) ? { traceId: spanContext.traceId, spanId: spanContext.spanId } : {}
    },
  }
  return destination ? pino(options, destination) : pino(options)
}

const traceparentPattern = /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/

/** The fields of every line about a run: its id, job, attempt and the trace it belongs to (its enqueuer's). */
export function runLogFields(run: { id: string; job: string; attempt: number; traceContext: TraceContext | undefined }): {
  runId: string
  job: string
  attempt: number
  traceId: string | undefined
} {
  const traceparent = run.traceContext?.traceparent
  const traceId = traceparent === undefined ? undefined : traceparentPattern.exec(traceparent)?.[1]
  return { runId: run.id, job: run.job, attempt: run.attempt, traceId }
}
