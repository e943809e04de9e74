import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import type {
  ConnectResponse,
  EnqueueStreamResponse,
  RunServiceResponses,
  StateServiceResponses,
  WorkerServiceResponses,
} from './raw-messages.js'

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

/** What a failed call rejects with. */
export interface RawCallError extends Error {
  code: grpc.status
  details: string
}

/** A bidirectional stream of the raw client: requests written as plain objects, `Response`s read. */
export type RawStream<Response> = grpc.ClientDuplexStream<Record<string, unknown>, Response>

/** A unary method of a loaded client, called by its name in the .proto file. */
type UnaryMethod = (
  request: Record<string, unknown>,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: RawCallError | null, response: unknown) => void,
) => void

/** A client of a service, as loadPackageDefinition makes it: a method per RPC, named as in the .proto file. */
interface LoadedClient {
  [method: string]: UnaryMethod
  close(): void
}

type LoadedClass<Client> = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => Client

/** The client classes loadPackageDefinition makes from the three services. */
interface LoadedServices {
  RunService: LoadedClass<LoadedClient & { EnqueueStream(): RawStream<EnqueueStreamResponse> }>
  WorkerService: LoadedClass<LoadedClient & { Connect(): RawStream<ConnectResponse> }>
  StateService: LoadedClass<LoadedClient>
}

const v1 = (grpc.loadPackageDefinition(definition) as unknown as { stackshift: { jobs: { v1: LoadedServices } } }).stackshift.jobs.v1

/** A dynamic client: `runs('Enqueue', {...})` on RunService, `workers(...)` on WorkerService, `state(...)` on StateService. */
export interface RawClient {
  runs<Method extends keyof RunServiceResponses>(
    method: Method,
    request: Record<string, unknown>,
    metadata?: grpc.Metadata,
  ): Promise<RunServiceResponses[Method]>
  /** `deadlineMs`: how long the call may take (30 s unless given). */
  workers<Method extends keyof WorkerServiceResponses>(
    method: Method,
    request: Record<string, unknown>,
    deadlineMs?: number,
  ): Promise<WorkerServiceResponses[Method]>
  /** `deadlineMs`: how long the call may take (30 s unless given). */
  state<Method extends keyof StateServiceResponses>(
    method: Method,
    request: Record<string, unknown>,
    deadlineMs?: number,
  ): Promise<StateServiceResponses[Method]>
  /** Opens an EnqueueStream. */
  enqueueStream(): RawStream<EnqueueStreamResponse>
  /** Opens the worker stream. */
  connect(): RawStream<ConnectResponse>
  close(): void
}

/** `options`: channel options; clients with the same options (and address) share one connection. */
export function createRawClient(address: string, options: grpc.ChannelOptions = {}): RawClient {
  const runService = new v1.RunService(address, grpc.credentials.createInsecure(), options)
  const workerService = new v1.WorkerService(address, grpc.credentials.createInsecure(), options)
  const stateService = new v1.StateService(address, grpc.credentials.createInsecure(), options)
  /** Calls `method` of `client`; the caller says what its `Response` is. */
  const call = <Response>(
    client: LoadedClient,
    method: string,
    request: Record<string, unknown>,
    metadata = new grpc.Metadata(),
    deadlineMs = 30_000,
  ) =>
    new Promise<Response>((resolve, reject) =>
      client[method]!(request, metadata, { deadline: Date.now() + deadlineMs }, (error, response) =>
        error ? reject(error) : resolve(response as Response),
      ),
    )
  return {
    runs: (method, request, metadata) => call(runService, method, request, metadata),
    workers: (method, request, deadlineMs) => call(workerService, method, request, undefined, deadlineMs),
    state: (method, request, deadlineMs) => call(stateService, method, request, undefined, deadlineMs),
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
