import type { AttemptRecord, ErrorInfo } from '../../core/run.js'
import { type Executor, sql } from '../database.js'

/** An attempt that ended without completing the run. */
export interface EndedAttempt {
  runId: string
  attempt: number
  outcome: 'failed' | 'lease_expired' | 'cancelled'
  startedAt: Date | undefined
  workerId: string | undefined
  error: ErrorInfo | undefined
}

/** Appends ended attempts to the runs' history. */
export async function attemptRecordMany(db: Executor, params: { attempts: readonly EndedAttempt[] }): Promise<void> {
  const { attempts } = params
  await sql(
    db,
    `
    INSERT INTO stackshift.attempts (run_id, attempt, outcome, started_at, finished_at, worker_id, error)
    SELECT v.run_id, v.attempt, v.outcome::stackshift.attempt_outcome, v.started_at, now(), v.worker_id, v.error::jsonb
    FROM unnest($1::uuid[], $2::integer[], $3::text[], $4::timestamptz[], $5::text[], $6::text[])
      AS v(run_id, attempt, outcome, started_at, worker_id, error)
    ON CONFLICT (run_id, attempt) DO UPDATE
      SET outcome = excluded.outcome, started_at = excluded.started_at, finished_at = excluded.finished_at,
          worker_id = excluded.worker_id, error = excluded.error
    `,
    [
      attempts.map((a) => a.runId),
      attempts.map((a) => a.attempt),
      attempts.map((a) => a.outcome),
      attempts.map((a) => a.startedAt ?? null),
      attempts.map((a) => a.workerId ?? null),
      attempts.map((a) => (a.error ? JSON.stringify(a.error) : null)),
    ],
  )
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
