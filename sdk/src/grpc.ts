import {
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type Interceptor,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js'
import { AdminServiceClient } from '@stackshift/proto/admin-service'
import { JobServiceClient } from '@stackshift/proto/job-service'
import { OperatorServiceClient } from '@stackshift/proto/operator-service'
import { RunServiceClient } from '@stackshift/proto/run-service'
import { ScheduleServiceClient } from '@stackshift/proto/schedule-service'
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
  schedules: ScheduleServiceClient
  jobs: JobServiceClient
  close(): void
}

const defaultChannelOptions: ChannelOptions = {
  // Ping idle connections so a dead server is noticed within seconds, not at the next write.
  'grpc.keepalive_time_ms': protocolLimits.keepalivePingIntervalMs,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  // gRPC waits longer and longer between tries to reach a server that is away, up to 2 minutes by
  // default: a worker whose server restarted a few times came back long after the server did, and lost
  // its leases meanwhile. 5 s bounds that wait at a few connection attempts a minute.
  'grpc.max_reconnect_backoff_ms': 5_000,
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
  const schedules = new ScheduleServiceClient(address, creds, shared())
  const jobs = new JobServiceClient(address, creds, shared())
  return {
    runs,
    workers,
    state,
    admin,
    operator,
    schedules,
    jobs,
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
export function withRetries<T>(call: () => Promise<T>, budgetMs: number): Promise<T> {
  const deadline = Date.now() + budgetMs
  return retryWhile(call, (delayMs) => Date.now() + delayMs < deadline)
}

/**
 * Retries a call made inside a run's attempt (a State Store operation under
 * the run's lease, an event with an id derived from the step) while it fails
 * with UNAVAILABLE or ABORTED, with no time budget: the attempt bounds it, as
 * for the writes on the worker's stream (worker-connection.ts). Once the
 * server reaches its database again it stores the call, or refuses a fenced
 * one whose lease ran out meanwhile (FAILED_PRECONDITION); its answer to the
 * worker's heartbeat then revokes such a lease, and `throwIfAborted` ends the
 * loop. So an outage shorter than the lease costs no attempt.
 */
export function withRetriesUnderLease<T>(call: () => Promise<T>, throwIfAborted: () => void): Promise<T> {
  return retryWhile(call, () => {
    throwIfAborted()
    return true
  })
}

async function retryWhile<T>(call: () => Promise<T>, canRetryAfter: (delayMs: number) => boolean): Promise<T> {
  for (let delayMs = 100; ; delayMs = Math.min(delayMs * 2, 2000)) {
    try {
      return await call()
    } catch (error) {
      if (!(error as StackShiftError).isRetryable || !canRetryAfter(delayMs)) throw error
      await new Promise((done) => setTimeout(done, delayMs * (0.5 + Math.random() / 2)))
    }
  }
}
