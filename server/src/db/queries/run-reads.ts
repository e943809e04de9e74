import type { AttemptRecord, ErrorInfo, RunFilter, RunRecord, StepKind, StepRecord, StepStatus } from '../../core/run.js'
import { type Executor, sql, sqlPlannedEachTime } from '../database.js'
import { newestRunsSql } from './run-filters.js'
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

/**
 * A page of runs, newest first: run ids are time-ordered, so the primary key
 * (or the id at the end of each filter's index) gives the order. See
 * newestRunsSql for how the filters meet their indexes.
 */
export async function runList(db: Executor, filter: RunFilter): Promise<RunRecord[]> {
  const values: unknown[] = []
  const rows = await sqlPlannedEachTime<RunRow>(
    db,
    newestRunsSql(runColumns, { ...filter, idBelow: filter.afterId }, values, filter.limit),
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
    wait_event_name: string | null
    wait_match_json: string | null
  }>(
    db,
    // A wait in progress is a row of stackshift.waits too (one per run, gone once
    // the wait ends): it says which event the step waits for.
    `
    SELECT s.step_id, s.kind, s.status, s.result::text AS result_json, s.error, s.attempt, s.started_at, s.finished_at, s.wake_at,
      w.event_name AS wait_event_name, w.match::text AS wait_match_json
    FROM stackshift.steps AS s
    LEFT JOIN stackshift.waits AS w ON w.run_id = s.run_id AND w.step_id = s.step_id AND s.status = 'waiting'
    WHERE s.run_id = $1
    ORDER BY s.finished_at NULLS LAST, s.step_id
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
    waitingFor: row.wait_event_name === null ? undefined : { eventName: row.wait_event_name, matchJson: row.wait_match_json ?? '{}' },
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
