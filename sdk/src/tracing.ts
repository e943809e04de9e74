import { type Attributes, type Context, context, propagation, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'

/**
 * OpenTelemetry through the API package only: with no SDK registered every
 * call below is a no-op (non-recording spans, empty carriers), so tracing
 * costs nothing until the application turns it on.
 */
export const tracer = trace.getTracer('@stackshift/sdk', '0.1.0')

/** Attribute names, in the `stackshift.` namespace. */
export const attributes = {
  runId: 'stackshift.run.id',
  queue: 'stackshift.queue',
  job: 'stackshift.job',
  attempt: 'stackshift.attempt',
  stepId: 'stackshift.step.id',
  stepKind: 'stackshift.step.kind',
  outcome: 'stackshift.outcome',
  runCount: 'stackshift.run.count',
} as const

/** The active context as a W3C carrier (traceparent, tracestate, baggage); empty when nothing traces. */
export function currentTraceContext(): Record<string, string> {
  const carrier: Record<string, string> = {}
  propagation.inject(context.active(), carrier)
  return carrier
}

/** The context a stored carrier describes, to parent an attempt's span. */
export function contextFrom(carrier: Readonly<Record<string, string>>): Context {
  return propagation.extract(context.active(), carrier)
}

/**
 * Runs `fn` inside a new active span; records its outcome (`outcome` attribute,
 * error status and exception) and ends the span when it settles.
 */
export async function inSpan<T>(
  name: string,
  options: { kind?: SpanKind; attributes?: Attributes; parent?: Context; outcomeOf?: (error: unknown) => string },
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = options.parent ?? context.active()
  return tracer.startActiveSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes }, parent, async (span) => {
    try {
      const result = await fn(span)
      if (!span.isRecording()) return result
      span.setAttribute(attributes.outcome, 'ok')
      return result
    } catch (error) {
      if (span.isRecording()) {
        const outcome = options.outcomeOf?.(error) ?? 'error'
        span.setAttribute(attributes.outcome, outcome)
        if (outcome === 'error') {
          span.recordException(error instanceof Error ? error : String(error))
          span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) })
        }
      }
      throw error
    } finally {
      span.end()
    }
  })
}

export { SpanKind }
