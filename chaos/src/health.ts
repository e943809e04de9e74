import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { protoPath } from 'grpc-health-check'

/** A client of grpc.health.v1.Health, as loadPackageDefinition makes it from grpc-health-check's .proto file. */
interface HealthClient {
  Check(
    request: { service: string },
    options: grpc.CallOptions,
    callback: (error: grpc.ServiceError | null, response: { status: string }) => void,
  ): void
  close(): void
}

const health = (
  grpc.loadPackageDefinition(protoLoader.loadSync(protoPath, { keepCase: true, enums: String })) as unknown as {
    grpc: {
      health: { v1: { Health: new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => HealthClient } }
    }
  }
).grpc.health.v1

/**
 * Asks a server for its overall health: "SERVING", "NOT_SERVING", or
 * "UNREACHABLE" when the call fails. Each check dials the server afresh (a
 * subchannel of its own): gRPC shares connections between clients of the
 * same options, and one that failed against a restarting server waits out
 * a growing backoff, during which calls fail without trying; the check
 * would report the backoff, not the server.
 */
export function checkHealth(address: string, timeoutMs = 2000): Promise<string> {
  const client = new health.Health(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 })
  return new Promise((resolve) =>
    client.Check({ service: '' }, { deadline: Date.now() + timeoutMs }, (error, response) => {
      client.close()
      resolve(error ? 'UNREACHABLE' : response.status)
    }),
  )
}

/** A gRPC status code's name ("UNAVAILABLE"), or the number for a code without one. */
export function statusName(code: number): string {
  return (grpc.status as Record<number, string | undefined>)[code] ?? String(code)
}
