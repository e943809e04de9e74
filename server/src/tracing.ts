import { register } from 'node:module'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { registerInstrumentations } from '@opentelemetry/instrumentation'
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc'
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions'

/**
 * OpenTelemetry for the server process: a tracer provider (W3C propagation,
 * async context) and the maintained grpc-js and pg instrumentations, so RPC
 * and SQL spans join the traces their callers started.
 *
 * The instrumentations patch modules as they load. Under ESM that takes a
 * loader hook, registered here for just those two modules; so this must run
 * before anything imports @grpc/grpc-js or pg (main.ts imports the server
 * after it).
 */
export interface Tracing {
  /** Flushes pending spans and stops the exporter. */
  shutdown(): Promise<void>
}

export function startTracing(options: { serviceName: string; spanProcessors: SpanProcessor[] }): Tracing {
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url, { data: { include: ['@grpc/grpc-js', 'pg'] } })
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: options.serviceName }),
    spanProcessors: options.spanProcessors,
  })
  provider.register()
  const unregister = registerInstrumentations({
    instrumentations: [new GrpcInstrumentation(), new PgInstrumentation({ requireParentSpan: true })],
  })
  return {
    shutdown: async () => {
      unregister()
      await provider.shutdown()
    },
  }
}

/**
 * Tracing as the standard OpenTelemetry environment variables ask for it:
 * on, exporting OTLP over HTTP, when an OTLP endpoint is set
 * (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or
 * OTEL_TRACES_EXPORTER is "otlp"; off otherwise, or when OTEL_SDK_DISABLED is
 * "true". The exporter reads the other OTEL_EXPORTER_OTLP_* settings itself.
 */
export function startTracingFromEnvironment(env: NodeJS.ProcessEnv): Tracing | undefined {
  if (env.OTEL_SDK_DISABLED === 'true') return undefined
  const isWanted = Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) || env.OTEL_TRACES_EXPORTER === 'otlp'
  if (!isWanted) return undefined
  return startTracing({
    serviceName: env.OTEL_SERVICE_NAME || 'stackshift-server',
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  })
}
