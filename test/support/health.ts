import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { protoPath } from 'grpc-health-check'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const health = (grpc.loadPackageDefinition(protoLoader.loadSync(protoPath, { keepCase: true, enums: String })) as any).grpc.health.v1

/** The standard gRPC health check of `service` ('' for the whole server), as a string such as "SERVING". */
export function checkHealth(address: string, service = ''): Promise<string> {
  const client = new health.Health(address, grpc.credentials.createInsecure())
  return new Promise((resolve, reject) =>
    client.Check({ service }, { deadline: Date.now() + 5000 }, (error: Error | null, response: { status: string }) => {
      client.close()
      return error ? reject(error) : resolve(response.status)
    }),
  )
}
