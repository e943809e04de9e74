import type { ErrorInfo, RunOrigin, RunRecord, StoredRunStatus, TraceContext } from '../../core/run.js'

/** A run row as the statements that return whole runs select it (runColumns). */
export interface RunRow {
  id: string
  namespace: string
  queue: string
  job: string
  status: StoredRunStatus
  payload_json: string
  result_json: string | null
  error: ErrorInfo | null
  attempt: number
  max_attempts: number
  priority: number
  created_at: Date
  available_at: Date
  started_at: Date | null
  finished_at: Date | null
  idempotency_key: string | null
  trace_context: TraceContext | null
  origin: Exclude<RunOrigin, 'enqueue'> | null
  source_run_id: string | null
  replayed_from_step_id: string | null
  schedule_id: string | null
  scheduled_at: Date | null
  parent_run_id: string | null
  parent_step_id: string | null
  concurrency_key: string | null
}

/** The columns of a whole run, as RunRow names them. */
export const runColumns = `id::text AS id, namespace, queue, job, status, payload::text AS payload_json, result::text AS result_json, error,
  attempt, max_attempts, priority, created_at, available_at, started_at, finished_at, idempotency_key, trace_context,
  origin, source_run_id::text AS source_run_id, replayed_from_step_id, schedule_id, scheduled_at,
  parent_run_id::text AS parent_run_id, parent_step_id, concurrency_key`

export function toRunRecord(row: RunRow): RunRecord {
  return {
    id: row.id,
    namespace: row.namespace,
    queue: row.queue,
    job: row.job,
    status: row.status,
    payloadJson: row.payload_json,
    resultJson: row.result_json ?? undefined,
    error: row.error ?? undefined,
    attempts: row.attempt,
    maxAttempts: row.max_attempts,
    priority: row.priority,
    createdAt: row.created_at,
    availableAt: row.available_at,
    startedAt: row.started_at ?? undefined,
    finishedAt: row.finished_at ?? undefined,
    idempotencyKey: row.idempotency_key ?? undefined,
    traceContext: row.trace_context ?? undefined,
    origin: row.origin ?? 'enqueue',
    sourceRunId: row.source_run_id ?? undefined,
    replayedFromStepId: row.replayed_from_step_id ?? undefined,
    schedule: row.schedule_id === null ? undefined : { id: row.schedule_id, scheduledAt: row.scheduled_at! },
    parentRunId: row.parent_run_id ?? undefined,
    parentStepId: row.parent_step_id ?? undefined,
    concurrencyKey: row.concurrency_key ?? undefined,
  }
}
