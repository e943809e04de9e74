import type { status } from '@grpc/grpc-js'

/*
 * The responses the client in raw-client.ts receives, as proto-loader decodes
 * them with its options there: field names as in the .proto files, enums by
 * name, 64-bit integers as numbers. An unset message field is null; an unset
 * `optional` field or oneof member is absent, and a oneof's own name holds
 * the name of the member that is set.
 */

export interface Timestamp {
  seconds: number
  nanos: number
}

export interface RunError {
  name: string
  message: string
  stack: string
}

export interface Step {
  id: string
  /** 'STEP_STATUS_COMPLETED', ... */
  status: string
  result_json?: string
  error: RunError | null
  attempt: number
  started_at: Timestamp | null
  finished_at: Timestamp | null
  /** 'STEP_KIND_RUN', ... */
  kind: string
  wake_at: Timestamp | null
}

export interface RunAttempt {
  attempt: number
  /** 'ATTEMPT_OUTCOME_COMPLETED', ... */
  outcome: string
  started_at: Timestamp | null
  finished_at: Timestamp | null
  error: RunError | null
}

export interface Run {
  id: string
  namespace: string
  queue: string
  job: string
  /** 'RUN_STATUS_QUEUED', ... */
  status: string
  payload_json: string
  result_json?: string
  error: RunError | null
  attempts: number
  max_attempts: number
  priority: number
  created_at: Timestamp | null
  available_at: Timestamp | null
  started_at: Timestamp | null
  finished_at: Timestamp | null
  idempotency_key: string
  steps: Step[]
  attempt_history: RunAttempt[]
  trace_context: Record<string, string>
}

export interface Event {
  id: string
  name: string
  data_json: string
  received_at: Timestamp | null
}

export interface EnqueueResponse {
  run_id: string
  deduplicated: boolean
}

/** One answer on an EnqueueStream: `enqueue` is null when `code` is not OK. */
export interface EnqueueStreamResponse {
  id: number
  code: status
  message: string
  enqueue: EnqueueResponse | null
}

export interface MemoizedStep {
  step_id: string
  result_json?: string
}

export interface Task {
  run_id: string
  namespace: string
  queue: string
  job: string
  payload_json: string
  attempt: number
  max_attempts: number
  lease_token: string
  lease_ms: number
  steps: MemoizedStep[]
  created_at: Timestamp | null
  available_at: Timestamp | null
  lease_expires_at: Timestamp | null
  trace_context: Record<string, string>
}

export interface RevokedLease {
  run_id: string
  /** 'REVOKE_REASON_LEASE_LOST', ... */
  reason: string
}

export interface WorkerWelcome {
  worker_id: string
  lease_ms: number
  heartbeat_interval_ms: number
  max_payload_bytes: number
}

export interface HeartbeatResponse {
  revoked: RevokedLease[]
}

export interface FailRunResponse {
  /** 'RUN_STATUS_QUEUED' when the run will be retried, ... */
  status: string
  retry_at: Timestamp | null
}

export interface SuspendRunResponse {
  suspended: boolean
  event: Event | null
}

/** The answer to one operation on the worker stream. */
export interface OperationResult {
  id: number
  code: status
  message: string
  /** Which of the members below is set; absent when the operation failed. */
  result?: 'complete_step' | 'complete_run' | 'fail_run' | 'release_run' | 'heartbeat' | 'suspend_run'
  complete_step?: Record<string, never>
  complete_run?: Record<string, never>
  fail_run?: FailRunResponse
  release_run?: Record<string, never>
  heartbeat?: HeartbeatResponse
  suspend_run?: SuspendRunResponse
}

/** A message from the server on the worker stream. */
export interface ConnectResponse {
  welcome: WorkerWelcome | null
  tasks: Task[]
  results: OperationResult[]
  revoked: RevokedLease[]
  drained: boolean
}

export interface Lock {
  key: string
  lock_id: string
  fencing_token: number
  expires_at: Timestamp | null
}

/** What each RunService method the tests call answers. */
export interface RunServiceResponses {
  Enqueue: EnqueueResponse
  EnqueueBatch: { results: EnqueueResponse[] }
  GetRun: { run: Run | null }
  CancelRun: { run: Run | null }
  ListRuns: { runs: Run[]; next_cursor: string }
  SendEvent: { event: Event | null; deduplicated: boolean; resumed_runs: number }
  WaitForRun: { run: Run | null; finished: boolean }
}

/** What each WorkerService method the tests call answers. */
export interface WorkerServiceResponses {
  ClaimTask: { tasks: Task[] }
  Heartbeat: HeartbeatResponse
  CompleteStep: Record<string, never>
  CompleteRun: Record<string, never>
  FailRun: FailRunResponse
  ReleaseRun: Record<string, never>
  SuspendRun: SuspendRunResponse
}

/** What each StateService method the tests call answers. */
export interface StateServiceResponses {
  Get: { entry: { key: string; value_json: string; version: number } | null }
  Set: { version: number }
  Increment: { value: number; version: number }
  AcquireLock: { acquired: boolean; lock: Lock | null }
}
