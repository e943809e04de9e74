import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'

/*
 * A client built the way a developer in another language would: from the
 * .proto files alone, loaded at run time, with field names as written there
 * (snake_case). No ts-proto, no SDK.
 */

const protoDir = fileURLToPath(new URL('../../proto', import.meta.url))

const definition = protoLoader.loadSync(
  ['stackshift/jobs/v1/run_service.proto', 'stackshift/jobs/v1/worker_service.proto', 'stackshift/jobs/v1/state_service.proto'],
  {
    includeDirs: [protoDir],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  },
)

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const loaded = grpc.loadPackageDefinition(definition) as any
const v1 = loaded.stackshift.jobs.v1

/** What a failed call rejects with. */
export interface RawCallError extends Error {
  code: grpc.status
  details: string
}

/** A dynamic client: `call('Enqueue', {...})` on RunService or WorkerService. */
export interface RawClient {
  runs(method: string, request: Record<string, unknown>, metadata?: grpc.Metadata): Promise<Record<string, any>>
  /** `deadlineMs`: how long the call may take (30 s unless given). */
  workers(method: string, request: Record<string, unknown>, deadlineMs?: number): Promise<Record<string, any>>
  state(method: string, request: Record<string, unknown>): Promise<Record<string, any>>
  /** Opens an EnqueueStream. */
  enqueueStream(): grpc.ClientDuplexStream<Record<string, unknown>, Record<string, any>>
  /** Opens the worker stream. */
  connect(): grpc.ClientDuplexStream<Record<string, unknown>, Record<string, any>>
  close(): void
}

export function createRawClient(address: string): RawClient {
  const runService = new v1.RunService(address, grpc.credentials.createInsecure())
  const workerService = new v1.WorkerService(address, grpc.credentials.createInsecure())
  const stateService = new v1.StateService(address, grpc.credentials.createInsecure())
  const call = (client: any, method: string, request: Record<string, unknown>, metadata = new grpc.Metadata(), deadlineMs = 30_000) =>
    new Promise<Record<string, any>>((resolve, reject) =>
      client[method](
        request,
        metadata,
        { deadline: Date.now() + deadlineMs },
        (error: RawCallError | null, response: Record<string, any>) => (error ? reject(error) : resolve(response)),
      ),
    )
  return {
    runs: (method, request, metadata) => call(runService, method, request, metadata),
    workers: (method, request, deadlineMs) => call(workerService, method, request, undefined, deadlineMs),
    state: (method, request) => call(stateService, method, request),
    enqueueStream: () => runService.EnqueueStream(),
    connect: () => workerService.Connect(),
    close: () => {
      runService.close()
      workerService.close()
      stateService.close()
    },
  }
}

/** The gRPC status and message a promise rejects with. */
export async function rejectionOf(promise: Promise<unknown>): Promise<{ code: grpc.status; details: string }> {
  try {
    await promise
  } catch (error) {
    const { code, details } = error as RawCallError
    return { code, details }
  }
  throw new Error('expected the call to fail, but it succeeded')
}
