/**
 * Tracing on, for the `stackshift-traced` system: the README's setup (an
 * OpenTelemetry SDK with batched OTLP export and the grpc-js instrumentation),
 * loaded with --import before the benchmark child. Spans go to the harness's
 * OTLP sink, which accepts and discards them.
 */
import { register } from 'node:module'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { registerInstrumentations } from '@opentelemetry/instrumentation'
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc'
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node'

register('@opentelemetry/instrumentation/hook.mjs', import.meta.url)
const provider = new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] })
provider.register()
registerInstrumentations({ instrumentations: [new GrpcInstrumentation()] })
process.once('beforeExit', () => provider.shutdown())
