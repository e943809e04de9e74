import type {
  AttemptRecord,
  ErrorInfo,
  RunFilter,
  RunRecord,
  RunStatus,
  StepKind,
  StepRecord,
  StepStatus,
  StoredRunStatus,
} from '../../core/run.js'
import { runIdFloor } from '../../core/run-id.js'
import { type Executor, sql, sqlPlannedEachTime } from '../database.js'
import { type RunRow, runColumns, toRunRecord } from './run-record.js'

/** Reads of runs for clients: one run with its steps and attempts, pages of runs, and WaitForRun's mark. */

/** One run, or undefined when the namespace has no run with that id. */
export async function runGet(db: Executor, params: { namespace: string; runId: string }): Promise<RunRecord | undefined> {
  const rows = await sql<RunRow>(db, `SELECT ${runColumns} FROM stackshift.runs WHERE id = $1 AND namespace = $2`, [
    params.runId,
    params.namespace,
  ])
  return rows[0] && toRunRecord(rows[0])
}

/** The statuses of a public status, as stored ('queued' includes runs waiting for a delay). */
const storedStatuses: Record<RunStatus, readonly StoredRunStatus[]> = {
  queued: ['queued', 'scheduled'],
  running: ['running'],
  waiting: ['waiting'],
  completed: ['completed'],
  failed: ['failed'],
  cancelled: ['cancelled'],
}

/**
 * A page of runs, newest first: run ids are time-ordered, so the primary key
 * (or the id at the end of each filter's index) gives the order, and a
 * creation-time range is an id range. The statement names only the filters
 * given, and the status as literals, so the planner can match each to its
 * index (runs_by_queue, runs_by_job, the partial ones of each status,
 * runs_payload for containment; see migration 0010); it is planned for its
 * values every time, since how many runs a filter selects decides the plan.
 */
export async function runList(db: Executor, filter: RunFilter): Promise<RunRecord[]> {
  const values: unknown[] = [filter.namespace]
  const parameter = (value: unknown) => {
    values.push(value)
    return `$${values.length}`
  }
  const conditions = ['namespace = $1']
  if (filter.runId !== undefined) conditions.push(`id = ${parameter(filter.runId)}::uuid`)
  if (filter.queue !== undefined) conditions.push(`queue = ${parameter(filter.queue)}`)
  if (filter.job !== undefined) conditions.push(`job = ${parameter(filter.job)}`)
  if (filter.status !== undefined) {
    // Literals from the fixed list above, never from the request: they let a partial index match.
    const statuses = storedStatuses[filter.status].map((status) => `'${status}'`)
    conditions.push(statuses.length === 1 ? `status = ${statuses[0]!}` : `status IN (${statuses.join(', ')})`)
  }
  if (filter.sourceRunId !== undefined) conditions.push(`source_run_id = ${parameter(filter.sourceRunId)}::uuid`)
  if (filter.idempotencyKey !== undefined) conditions.push(`idempotency_key = ${parameter(filter.idempotencyKey)}`)
  if (filter.payloadMatchJson !== undefined) conditions.push(`payload @> ${parameter(filter.payloadMatchJson)}::jsonb`)
  if (filter.createdAfter !== undefined) conditions.push(`id >= ${parameter(runIdFloor(filter.createdAfter.getTime()))}::uuid`)
  const before = [filter.afterId, filter.createdBefore && runIdFloor(filter.createdBefore.getTime())].filter((id) => id !== undefined)
  for (const id of before) conditions.push(`id < ${parameter(id)}::uuid`)
  const rows = await sqlPlannedEachTime<RunRow>(
    db,
    `SELECT ${runColumns} FROM stackshift.runs WHERE ${conditions.join(' AND ')} ORDER BY id DESC LIMIT ${parameter(filter.limit)}`,
    values,
  )
  return rows.map(toRunRecord)
}

/**
 * Marks a run as waited for, so the trigger notifies when it finishes. Writes
 * only while the flag is unset and the run unfinished.
 */
export async function runMarkWaitedFor(db: Executor, params: { namespace: string; runId: string }): Promise<void> {
  await sql(
    db,
    `UPDATE stackshift.runs SET has_waiter = true
     WHERE id = $1 AND namespace = $2 AND NOT has_waiter AND status NOT IN ('completed', 'failed', 'cancelled')`,
    [params.runId, params.namespace],
  )
}

/** The steps of one run, in the order they were recorded. */
export async function stepListForRun(db: Executor, params: { runId: string }): Promise<StepRecord[]> {
  const rows = await sql<{
    step_id: string
    kind: StepKind
    status: StepStatus
    result_json: string | null
    error: ErrorInfo | null
    attempt: number
    started_at: Date
    finished_at: Date | null
    wake_at: Date | null
  }>(
    db,
    `
    SELECT step_id, kind, status, result::text AS result_json, error, attempt, started_at, finished_at, wake_at
    FROM stackshift.steps WHERE run_id = $1
    ORDER BY finished_at NULLS LAST, step_id
    `,
    [params.runId],
  )
  return rows.map((row) => ({
    id: row.step_id,
    kind: row.kind,
    status: row.status,
    resultJson: row.result_json ?? undefined,
    error: row.error ?? undefined,
    attempt: row.attempt,
    startedAt: row.started_at,
    finishedAt: row.finished_at ?? undefined,
    wakeAt: row.wake_at ?? undefined,
  }))
}

/** The ended attempts of one run, oldest first. */
export async function attemptListForRun(db: Executor, params: { runId: string }): Promise<AttemptRecord[]> {
  const rows = await sql<{
    attempt: number
    outcome: AttemptRecord['outcome']
    started_at: Date | null
    finished_at: Date
    error: ErrorInfo | null
  }>(db, `SELECT attempt, outcome, started_at, finished_at, error FROM stackshift.attempts WHERE run_id = $1 ORDER BY attempt`, [
    params.runId,
  ])
  return rows.map((row) => ({
    attempt: row.attempt,
    outcome: row.outcome,
    startedAt: row.started_at ?? undefined,
    finishedAt: row.finished_at,
    error: row.error ?? undefined,
  }))
}

/** Which of the given runs have finished (completed, failed or cancelled). */
export async function runListFinished(db: Executor, params: { runIds: readonly string[] }): Promise<string[]> {
  const rows = await sql<{ id: string }>(
    db,
    `SELECT id::text AS id FROM stackshift.runs WHERE id = ANY($1::uuid[]) AND status IN ('completed', 'failed', 'cancelled')`,
    [params.runIds],
  )
  return rows.map((row) => row.id)
}
