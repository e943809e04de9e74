import { type Attributes, type Context, context, propagation, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { LeaseLostError, RunCancelledError, RunSuspendedError, WorkerShutdownError } from './errors.js'
import { sdkPackage } from './version.js'

/**
 * OpenTelemetry through the API package only: with no SDK registered every
 * call below is a no-op (non-recording spans, empty carriers), so tracing
 * costs nothing until the application turns it on.
 */
export const tracer = trace.getTracer(sdkPackage.name, sdkPackage.version)

/** Attribute names, in the `stackshift.` namespace. */
export const attributes = {
  runId: 'stackshift.run.id',
  queue: 'stackshift.queue',
  job: 'stackshift.job',
  attempt: 'stackshift.attempt',
  stepId: 'stackshift.step.id',
  stepKind: 'stackshift.step.kind',
  stateKey: 'stackshift.state.key',
  outcome: 'stackshift.outcome',
  runCount: 'stackshift.run.count',
} as const

/** The active context as a W3C carrier (traceparent, tracestate, baggage); empty when nothing traces. */
export function currentTraceContext(): Record<string, string> {
  const carrier: Record<string, string> = {}
  propagation.inject(context.active(), carrier)
  return carrier
}

const traceparentPattern = /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}$/

/** The trace id a carrier's traceparent names, if it has one. */
export function traceIdOf(carrier: Readonly<Record<string, string>>): string | undefined {
  return carrier.traceparent === undefined ? undefined : traceparentPattern.exec(carrier.traceparent)?.[1]
}

/** The context a stored carrier describes, to parent an attempt's span. */
export function contextFrom(carrier: Readonly<Record<string, string>>): Context {
  return propagation.extract(context.active(), carrier)
}

/**
 * What ended an attempt or a step that threw. Only 'error' is an error: a
 * suspension, a cancellation, a lost lease or a hand-back at shutdown are how
 * durable runs work, not failures of the span.
 */
export function outcomeOf(error: unknown): string {
  if (error instanceof RunSuspendedError) return 'suspended'
  if (error instanceof RunCancelledError) return 'cancelled'
  if (error instanceof LeaseLostError) return 'lease_lost'
  if (error instanceof WorkerShutdownError) return 'released'
  return 'error'
}

/** Marks a span with the outcome of `error`; an 'error' outcome also records the exception and the error status. */
export function recordOutcome(span: Span, error: unknown): void {
  if (!span.isRecording()) return
  const outcome = outcomeOf(error)
  span.setAttribute(attributes.outcome, outcome)
  if (outcome !== 'error') return
  span.recordException(error instanceof Error ? error : String(error))
  span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) })
}

/**
 * Runs `fn` inside a new active span; records its outcome (`outcome`
 * attribute: 'ok' or what `outcomeOf` says; the exception and error status for
 * errors) and ends the span when it settles.
 */
export async function inSpan<T>(
  name: string,
  options: { kind?: SpanKind; attributes?: Attributes; parent?: Context },
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = options.parent ?? context.active()
  return tracer.startActiveSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes }, parent, async (span) => {
    try {
      // The default outcome; `fn` may name another (for example 'memoized').
      if (span.isRecording()) span.setAttribute(attributes.outcome, 'ok')
      return await fn(span)
    } catch (error) {
      recordOutcome(span, error)
      throw error
    } finally {
      span.end()
    }
  })
}

export { type Span, SpanKind }
