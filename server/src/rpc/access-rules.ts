import type { CreateApiKeyRequest, ListApiKeysRequest } from '@stackshift/proto/admin-service'
import type { StartBulkActionRequest } from '@stackshift/proto/operator-service'
import type { CancelRunRequest, EnqueueStreamRequest } from '@stackshift/proto/run-service'
import type { ConnectRequest } from '@stackshift/proto/worker-service'
import type { Scope } from '../core/access.js'
import { defaultNamespace } from '../core/limits.js'

/**
 * What each method needs: the scope of every message it receives, and the
 * namespace that message acts in. One table for every method of every
 * StackShift service; rpc/access-interceptor.ts applies it in front of the
 * handlers. Methods missing here (health, reflection) are open to all.
 */
export interface AccessRule {
  /** The scope a message needs; undefined: any valid key may send it. */
  scopeOf: (message: never) => Scope | undefined
  /**
   * The namespace a message acts in, as the request parsers will read it
   * (empty means "default"); undefined when it names none. Worker writes
   * about a leased run name none: they are fenced by the run's lease, and
   * the lease writes check the run's namespace against the key's.
   */
  namespaceOf: (message: never) => string | undefined
}

/** A request that names its namespace in the usual field. */
interface NamespacedRequest {
  namespace: string
}

/** A State Store request: inside a run when it carries the run's lease (`run`). */
interface StateRequest extends NamespacedRequest {
  run?: unknown
}

const namespaceOf = (request: NamespacedRequest): string => request.namespace || defaultNamespace
const noNamespace = (): undefined => undefined
const always = (scope: Scope) => (): Scope => scope

/** A plain method: one scope, namespace in the request. */
const namespaced = (scope: Scope): AccessRule => ({ scopeOf: always(scope), namespaceOf })
/** A State Store read: `read`, or `worker` inside a run. */
const stateRead: AccessRule = { scopeOf: (request: StateRequest) => (request.run ? 'worker' : 'read'), namespaceOf }
/** A State Store write: `state`, or `worker` inside a run. */
const stateWrite: AccessRule = { scopeOf: (request: StateRequest) => (request.run ? 'worker' : 'state'), namespaceOf }
/** A worker's write about a leased run. */
const leaseWrite: AccessRule = { scopeOf: always('worker'), namespaceOf: noNamespace }

export const accessRules: ReadonlyMap<string, AccessRule> = new Map<string, AccessRule>([
  ['/stackshift.jobs.v1.RunService/Enqueue', namespaced('enqueue')],
  [
    '/stackshift.jobs.v1.RunService/EnqueueStream',
    { scopeOf: always('enqueue'), namespaceOf: (request: EnqueueStreamRequest) => namespaceOf(request.enqueue ?? { namespace: '' }) },
  ],
  ['/stackshift.jobs.v1.RunService/EnqueueBatch', namespaced('enqueue')],
  ['/stackshift.jobs.v1.RunService/SendEvent', namespaced('enqueue')],
  ['/stackshift.jobs.v1.RunService/GetRun', namespaced('read')],
  ['/stackshift.jobs.v1.RunService/WaitForRun', namespaced('read')],
  ['/stackshift.jobs.v1.RunService/ListRuns', namespaced('read')],
  [
    '/stackshift.jobs.v1.RunService/CancelRun',
    { scopeOf: always('operate'), namespaceOf: (request: CancelRunRequest) => namespaceOf(request) },
  ],
  ['/stackshift.jobs.v1.StateService/Get', stateRead],
  ['/stackshift.jobs.v1.StateService/List', stateRead],
  ['/stackshift.jobs.v1.StateService/Set', stateWrite],
  ['/stackshift.jobs.v1.StateService/Delete', stateWrite],
  ['/stackshift.jobs.v1.StateService/Increment', stateWrite],
  ['/stackshift.jobs.v1.StateService/SetIfAbsent', stateWrite],
  ['/stackshift.jobs.v1.StateService/CompareAndSet', stateWrite],
  ['/stackshift.jobs.v1.StateService/AcquireLock', namespaced('state')],
  ['/stackshift.jobs.v1.StateService/ExtendLock', namespaced('state')],
  ['/stackshift.jobs.v1.StateService/ReleaseLock', namespaced('state')],
  [
    '/stackshift.jobs.v1.WorkerService/Connect',
    // Only the stream's first message, the hello, names the namespace; the stream's writes are fenced to it.
    { scopeOf: always('worker'), namespaceOf: (message: ConnectRequest) => (message.hello ? namespaceOf(message.hello) : undefined) },
  ],
  ['/stackshift.jobs.v1.WorkerService/ClaimTask', namespaced('worker')],
  ['/stackshift.jobs.v1.WorkerService/Heartbeat', leaseWrite],
  ['/stackshift.jobs.v1.WorkerService/CompleteStep', leaseWrite],
  ['/stackshift.jobs.v1.WorkerService/CompleteRun', leaseWrite],
  ['/stackshift.jobs.v1.WorkerService/FailRun', leaseWrite],
  ['/stackshift.jobs.v1.WorkerService/ReleaseRun', leaseWrite],
  ['/stackshift.jobs.v1.WorkerService/SuspendRun', leaseWrite],
  [
    '/stackshift.jobs.v1.AdminService/CreateApiKey',
    // "*" names every namespace: only a key of every namespace may create such a key.
    { scopeOf: always('admin'), namespaceOf: (request: CreateApiKeyRequest) => namespaceOf(request) },
  ],
  // The operation narrows a listing or a revocation to the keys the caller manages.
  [
    '/stackshift.jobs.v1.AdminService/ListApiKeys',
    { scopeOf: always('admin'), namespaceOf: (request: ListApiKeysRequest) => request.namespace || undefined },
  ],
  ['/stackshift.jobs.v1.AdminService/RevokeApiKey', { scopeOf: always('admin'), namespaceOf: noNamespace }],
  ['/stackshift.jobs.v1.OperatorService/RerunRun', namespaced('operate')],
  ['/stackshift.jobs.v1.OperatorService/ReplayRun', namespaced('operate')],
  [
    '/stackshift.jobs.v1.OperatorService/StartBulkAction',
    // A dry run only counts: reading is enough.
    { scopeOf: (request: StartBulkActionRequest) => (request.dryRun ? 'read' : 'operate'), namespaceOf },
  ],
  ['/stackshift.jobs.v1.OperatorService/GetBulkAction', namespaced('read')],
  ['/stackshift.jobs.v1.OperatorService/ListBulkActions', namespaced('read')],
  ['/stackshift.jobs.v1.OperatorService/ListEvents', namespaced('read')],
  ['/stackshift.jobs.v1.OperatorService/ListWorkers', namespaced('read')],
  ['/stackshift.jobs.v1.OperatorService/GetQueueStats', namespaced('read')],
  ['/stackshift.jobs.v1.ScheduleService/CreateSchedule', namespaced('operate')],
  ['/stackshift.jobs.v1.ScheduleService/GetSchedule', namespaced('read')],
  ['/stackshift.jobs.v1.ScheduleService/ListSchedules', namespaced('read')],
  ['/stackshift.jobs.v1.ScheduleService/DeleteSchedule', namespaced('operate')],
  ['/stackshift.jobs.v1.ScheduleService/PauseSchedule', namespaced('operate')],
  ['/stackshift.jobs.v1.ScheduleService/ResumeSchedule', namespaced('operate')],
  ['/stackshift.jobs.v1.ScheduleService/TriggerSchedule', namespaced('operate')],
  ['/stackshift.jobs.v1.ScheduleService/BackfillSchedule', namespaced('operate')],
  // What the caller's own key may do: any valid key may ask.
  ['/stackshift.jobs.v1.OperatorService/GetCaller', { scopeOf: () => undefined, namespaceOf: noNamespace }],
  // Changing a limit changes how every worker runs the job: an operator's act (a worker declares policies in its hello).
  ['/stackshift.jobs.v1.JobService/ConfigureJob', namespaced('operate')],
  ['/stackshift.jobs.v1.JobService/GetJob', namespaced('read')],
  ['/stackshift.jobs.v1.JobService/ListJobs', namespaced('read')],
  ['/stackshift.jobs.v1.JobService/ConfigureQueue', namespaced('operate')],
  ['/stackshift.jobs.v1.JobService/GetQueue', namespaced('read')],
])
