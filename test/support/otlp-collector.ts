import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * A stand-in OTLP/HTTP collector on 127.0.0.1. Trace exports arrive as
 * protobuf, in which span names are plain UTF-8 and trace ids raw bytes, so
 * tests search the bytes instead of decoding them.
 */
export interface OtlpCollector {
  /** Value for OTEL_EXPORTER_OTLP_ENDPOINT. */
  endpoint: string
  /** Every trace export received so far, concatenated. */
  exported(): Buffer
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
    exported: () => Buffer.concat(exports),
    close: () => server.close(),
  }
}
