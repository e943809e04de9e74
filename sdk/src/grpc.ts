import {
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type Interceptor,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js'
import { AdminServiceClient } from '@stackshift/proto/admin-service'
import { OperatorServiceClient } from '@stackshift/proto/operator-service'
import { RunServiceClient } from '@stackshift/proto/run-service'
import { StateServiceClient } from '@stackshift/proto/state-service'
import { protocolLimits } from '@stackshift/proto/limits'
import { WorkerServiceClient } from '@stackshift/proto/worker-service'
import { type StackShiftError, errorFromStatus } from './errors.js'

/** The generated gRPC clients, sharing one channel. */
export interface GrpcClients {
  runs: RunServiceClient
  workers: WorkerServiceClient
  state: StateServiceClient
  admin: AdminServiceClient
  operator: OperatorServiceClient
  close(): void
}

const defaultChannelOptions: ChannelOptions = {
  // Ping idle connections so a dead server is noticed within seconds, not at the next write.
  'grpc.keepalive_time_ms': protocolLimits.keepalivePingIntervalMs,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
}

/**
 * The three clients on one channel to `address`. `interceptors` apply to
 * every call and stream of each (the API key's, credentials.ts).
 */
export function createGrpcClients(
  address: string,
  connection: { credentials: ChannelCredentials; channelOptions?: ChannelOptions | undefined; interceptors: Interceptor[] },
): GrpcClients {
  const { credentials: creds, interceptors } = connection
  const options = { ...defaultChannelOptions, ...connection.channelOptions }
  // A fresh options object for each client: grpc-js deletes `interceptors` from the one it is given.
  const runs = new RunServiceClient(address, creds, { ...options, interceptors: [...interceptors] })
  const shared = () => ({ ...options, interceptors: [...interceptors], channelOverride: runs.getChannel() })
  const workers = new WorkerServiceClient(address, creds, shared())
  const state = new StateServiceClient(address, creds, shared())
  const admin = new AdminServiceClient(address, creds, shared())
  const operator = new OperatorServiceClient(address, creds, shared())
  return {
    runs,
    workers,
    state,
    admin,
    operator,
    close: () => runs.close(),
  }
}

/** The typed error for a failed call. */
export function toStackShiftError(error: ServiceError): StackShiftError {
  return errorFromStatus(error.code, error.details || error.message)
}

/** A generated client's unary method. */
export type UnaryMethod<Request, Response> = (
  request: Request,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Response) => void,
) => unknown

/** Calls a unary method of a generated client (bound to it) with a deadline; failures become typed errors. */
export function callUnary<Request, Response>(
  method: UnaryMethod<Request, Response>,
  request: Request,
  timeoutMs: number,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    method(request, new Metadata(), { deadline: Date.now() + timeoutMs }, (error, response) =>
      error ? reject(toStackShiftError(error)) : resolve(response),
    )
  })
}

/**
 * Retries a call that is safe to repeat while it fails with UNAVAILABLE or
 * ABORTED, with exponential backoff, for up to `budgetMs`.
 */
export async function withRetries<T>(call: () => Promise<T>, budgetMs: number): Promise<T> {
  const deadline = Date.now() + budgetMs
  for (let delayMs = 100; ; delayMs = Math.min(delayMs * 2, 2000)) {
    try {
      return await call()
    } catch (error) {
      const canRetry = (error as StackShiftError).isRetryable && Date.now() + delayMs < deadline
      if (!canRetry) throw error
      await new Promise((done) => setTimeout(done, delayMs * (0.5 + Math.random() / 2)))
    }
  }
}
