// Load it before the application: node --import ./tracing.js app.js. Spans go to OTEL_EXPORTER_OTLP_ENDPOINT.
import { register } from 'node:module'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { registerInstrumentations } from '@opentelemetry/instrumentation'
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc'
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node'

register('@opentelemetry/instrumentation/hook.mjs', import.meta.url) // lets the instrumentation see ESM imports of grpc-js
const provider = new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] })
provider.register()
registerInstrumentations({ instrumentations: [new GrpcInstrumentation()] })
process.once('beforeExit', () => void provider.shutdown()) // flush the last spans
