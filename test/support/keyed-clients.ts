import { type ClientDuplexStream, type Metadata as MetadataType, Metadata, type ServiceError, credentials, status } from '@grpc/grpc-js'
import { AdminServiceClient, ApiKeyScope, CreateApiKeyRequest, type CreateApiKeyResponse } from '@stackshift/proto/admin-service'
import { JobServiceClient } from '@stackshift/proto/job-service'
import { OperatorServiceClient } from '@stackshift/proto/operator-service'
import { RunServiceClient } from '@stackshift/proto/run-service'
import { ScheduleServiceClient } from '@stackshift/proto/schedule-service'
import { StateServiceClient } from '@stackshift/proto/state-service'
import { WorkerServiceClient } from '@stackshift/proto/worker-service'

/**
 * The generated clients of every service on one channel, for calls made with
 * a chosen key (or none): what an access-control test needs to call each RPC
 * as each principal.
 */
export interface KeyedClients {
  runs: RunServiceClient
  workers: WorkerServiceClient
  state: StateServiceClient
  admin: AdminServiceClient
  operator: OperatorServiceClient
  schedules: ScheduleServiceClient
  jobs: JobServiceClient
  close(): void
}

export function connectClients(address: string): KeyedClients {
  const creds = credentials.createInsecure()
  const runs = new RunServiceClient(address, creds)
  const channelOverride = runs.getChannel()
  return {
    runs,
    workers: new WorkerServiceClient(address, creds, { channelOverride }),
    state: new StateServiceClient(address, creds, { channelOverride }),
    admin: new AdminServiceClient(address, creds, { channelOverride }),
    operator: new OperatorServiceClient(address, creds, { channelOverride }),
    schedules: new ScheduleServiceClient(address, creds, { channelOverride }),
    jobs: new JobServiceClient(address, creds, { channelOverride }),
    close: () => runs.close(),
  }
}

/** Metadata carrying `authorization: Bearer <key>`, or none for undefined. */
export function bearer(key: string | undefined): MetadataType {
  const metadata = new Metadata()
  if (key !== undefined) metadata.set('authorization', `Bearer ${key}`)
  return metadata
}

/** How a call ended: its status code and message, and its response when OK. */
export interface Outcome<Response> {
  code: status
  message: string
  response: Response | undefined
}

/** A generated client's unary method, bound to its client. */
type Unary<Request, Response> = (
  request: Request,
  metadata: MetadataType,
  callback: (error: ServiceError | null, response: Response) => void,
) => unknown

/** Calls a unary method with `key`; resolves with the outcome, whatever the status. */
export function callWith<Request, Response>(
  method: Unary<Request, Response>,
  request: Request,
  key: string | undefined,
): Promise<Outcome<Response>> {
  return new Promise((resolve) => {
    method(request, bearer(key), (error, response) =>
      resolve(error ? { code: error.code, message: error.details, response: undefined } : { code: status.OK, message: '', response }),
    )
  })
}

/**
 * Writes one message on a bidirectional stream opened with `key`, then
 * resolves with the first response, or with the status the stream ended
 * with. A stream that neither answers nor ends within `timeoutMs` resolves
 * as DEADLINE_EXCEEDED: every stream here answers at once when allowed and
 * ends at once when refused, so silence is a failure, not a pass.
 */
export function streamWith<Request, Response>(
  open: (metadata: MetadataType) => ClientDuplexStream<Request, Response>,
  message: Request,
  key: string | undefined,
  timeoutMs = 20_000,
): Promise<Outcome<Response>> {
  return new Promise((resolve) => {
    const stream = open(bearer(key))
    const finish = (outcome: Outcome<Response>) => {
      clearTimeout(timer)
      stream.removeAllListeners()
      stream.on('error', () => {})
      stream.cancel()
      resolve(outcome)
    }
    const timer = setTimeout(
      () => finish({ code: status.DEADLINE_EXCEEDED, message: `no answer within ${timeoutMs} ms`, response: undefined }),
      timeoutMs,
    )
    stream.on('data', (response: Response) => finish({ code: status.OK, message: '', response }))
    stream.on('error', (error: ServiceError) => finish({ code: error.code, message: error.details, response: undefined }))
    stream.write(message)
  })
}

/** Creates a key through AdminService with `adminKey`; returns its id and secret. */
export async function createKey(
  clients: KeyedClients,
  adminKey: string,
  request: { namespace: string; scopes: ApiKeyScope[]; name?: string; expiresAt?: Date },
): Promise<{ id: string; secret: string }> {
  const outcome = await callWith<CreateApiKeyRequest, CreateApiKeyResponse>(
    clients.admin.createApiKey.bind(clients.admin),
    CreateApiKeyRequest.fromPartial({ name: 'test', ...request }),
    adminKey,
  )
  if (!outcome.response) throw new Error(`CreateApiKey failed: ${outcome.code} ${outcome.message}`)
  return { id: outcome.response.key!.id, secret: outcome.response.secret }
}

export { ApiKeyScope }
