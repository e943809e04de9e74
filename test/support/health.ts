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
