import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire'

/** OTLP's SpanKind, as numbered in opentelemetry/proto/trace/v1/trace.proto. */
export const OtlpSpanKind = { unspecified: 0, internal: 1, server: 2, client: 3, producer: 4, consumer: 5 } as const

/** A span of an OTLP trace export, decoded: ids in lower-case hex, attributes by key. */
export interface OtlpSpan {
  traceId: string
  spanId: string
  /** '' for a root span. */
  parentSpanId: string
  name: string
  /** An OtlpSpanKind value. */
  kind: number
  attributes: Record<string, string | number | boolean>
  /** The `service.name` of the resource that exported it. */
  serviceName: string | undefined
}

/**
 * A stand-in OTLP/HTTP collector on 127.0.0.1. Trace exports arrive as
 * protobuf (`ExportTraceServiceRequest`); `spans()` decodes them.
 */
export interface OtlpCollector {
  /** Value for OTEL_EXPORTER_OTLP_ENDPOINT. */
  endpoint: string
  /** Every span of every trace export received so far. */
  spans(): OtlpSpan[]
  close(): void
}

export async function startOtlpCollector(): Promise<OtlpCollector> {
  const exports: Buffer[] = []
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      if (request.url === '/v1/traces') exports.push(Buffer.concat(chunks))
      response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans: () => exports.flatMap(decodeTraceExport),
    close: () => server.close(),
  }
}

/*
 * A decoder of the fields the tests read, by the field numbers of
 * opentelemetry/proto/collector/trace/v1/trace_service.proto and
 * trace/v1/trace.proto, common/v1/common.proto, resource/v1/resource.proto.
 * Other fields are skipped, as any protobuf reader skips unknown ones.
 */

/** Calls `onField` for each field of the message in `bytes`; it returns false for a field it does not read. */
function readFields(bytes: Uint8Array, onField: (field: number, wireType: WireType, reader: BinaryReader) => boolean): void {
  const reader = new BinaryReader(bytes)
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag()
    if (!onField(field, wireType, reader)) reader.skip(wireType, field)
  }
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')

/** ExportTraceServiceRequest: 1 resource_spans. */
export function decodeTraceExport(bytes: Uint8Array): OtlpSpan[] {
  const spans: OtlpSpan[] = []
  readFields(bytes, (field, _, reader) => {
    if (field !== 1) return false
    spans.push(...decodeResourceSpans(reader.bytes()))
    return true
  })
  return spans
}

/** ResourceSpans: 1 resource, 2 scope_spans. */
function decodeResourceSpans(bytes: Uint8Array): OtlpSpan[] {
  let serviceName: string | undefined
  const scopeSpans: Uint8Array[] = []
  readFields(bytes, (field, _, reader) => {
    if (field === 1) {
      // Resource: 1 attributes.
      readFields(reader.bytes(), (resourceField, __, resourceReader) => {
        if (resourceField !== 1) return false
        const [key, value] = decodeKeyValue(resourceReader.bytes())
        if (key === 'service.name') serviceName = String(value)
        return true
      })
    } else if (field === 2) scopeSpans.push(reader.bytes())
    else return false
    return true
  })
  const spans: OtlpSpan[] = []
  for (const scope of scopeSpans) {
    // ScopeSpans: 2 spans.
    readFields(scope, (field, _, reader) => {
      if (field !== 2) return false
      spans.push({ ...decodeSpan(reader.bytes()), serviceName })
      return true
    })
  }
  return spans
}

/** Span: 1 trace_id, 2 span_id, 4 parent_span_id, 5 name, 6 kind, 9 attributes. */
function decodeSpan(bytes: Uint8Array): Omit<OtlpSpan, 'serviceName'> {
  const span: Omit<OtlpSpan, 'serviceName'> = { traceId: '', spanId: '', parentSpanId: '', name: '', kind: 0, attributes: {} }
  readFields(bytes, (field, _, reader) => {
    if (field === 1) span.traceId = hex(reader.bytes())
    else if (field === 2) span.spanId = hex(reader.bytes())
    else if (field === 4) span.parentSpanId = hex(reader.bytes())
    else if (field === 5) span.name = reader.string()
    else if (field === 6) span.kind = reader.int32()
    else if (field === 9) {
      const [key, value] = decodeKeyValue(reader.bytes())
      if (value !== undefined) span.attributes[key] = value
    } else return false
    return true
  })
  return span
}

/** KeyValue: 1 key, 2 value (AnyValue: 1 string, 2 bool, 3 int, 4 double; arrays, maps and bytes are left out). */
function decodeKeyValue(bytes: Uint8Array): [string, string | number | boolean | undefined] {
  let key = ''
  let value: string | number | boolean | undefined
  readFields(bytes, (field, _, reader) => {
    if (field === 1) key = reader.string()
    else if (field === 2) {
      readFields(reader.bytes(), (valueField, __, valueReader) => {
        if (valueField === 1) value = valueReader.string()
        else if (valueField === 2) value = valueReader.bool()
        else if (valueField === 3) value = Number(valueReader.int64())
        else if (valueField === 4) value = valueReader.double()
        else return false
        return true
      })
    } else return false
    return true
  })
  return [key, value]
}
