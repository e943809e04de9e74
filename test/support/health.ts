import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { protoPath } from 'grpc-health-check'

/** A client of grpc.health.v1.Health, as loadPackageDefinition makes it from grpc-health-check's .proto file. */
interface HealthClient {
  Check(
    request: { service: string },
    options: grpc.CallOptions,
    callback: (error: Error | null, response: { status: string }) => void,
  ): void
  Watch(request: { service: string }): grpc.ClientReadableStream<{ status: string }>
  close(): void
}

const health = (
  grpc.loadPackageDefinition(protoLoader.loadSync(protoPath, { keepCase: true, enums: String })) as unknown as {
    grpc: { health: { v1: { Health: new (address: string, credentials: grpc.ChannelCredentials) => HealthClient } } }
  }
).grpc.health.v1

/** The standard gRPC health check of `service` ('' for the whole server), as a string such as "SERVING". */
export function checkHealth(address: string, service = ''): Promise<string> {
  const client = new health.Health(address, grpc.credentials.createInsecure())
  return new Promise((resolve, reject) =>
    client.Check({ service }, { deadline: Date.now() + 5000 }, (error, response) => {
      client.close()
      if (error) reject(error)
      else resolve(response.status)
    }),
  )
}

/** A Watch call of grpc.health.v1.Health: the statuses it was sent, in order, and how it ended. */
export interface HealthWatch {
  readonly statuses: string[]
  /** Resolves when the call ends, with its status code and the time it ended (Date.now()). */
  readonly ended: Promise<{ code: grpc.status; endedAt: number }>
  cancel(): void
}

/** Watches the health of `service` ('' for the whole server), as a load balancer does. */
export function watchHealth(address: string, service = ''): HealthWatch {
  const client = new health.Health(address, grpc.credentials.createInsecure())
  const call = client.Watch({ service })
  const statuses: string[] = []
  call.on('data', (response: { status: string }) => statuses.push(response.status))
  const ended = new Promise<{ code: grpc.status; endedAt: number }>((resolve) => {
    call.on('error', () => {})
    call.on('status', (final: grpc.StatusObject) => {
      client.close()
      resolve({ code: final.code, endedAt: Date.now() })
    })
  })
  return { statuses, ended, cancel: () => call.cancel() }
}
