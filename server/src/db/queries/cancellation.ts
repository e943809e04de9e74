import type { ErrorInfo, RunRecord, StoredRunStatus } from '../../core/run.js'
import { runCancelledChannel } from '../channels.js'
import { type Executor, sql } from '../database.js'
import { type RunRow, runColumns, toRunRecord } from './run-record.js'

/**
 * Locks a run for cancelling; returns its stored status, or undefined if there
 * is no such run (in `namespace`, when given).
 */
export async function runLockForCancel(
  db: Executor,
  params: { namespace: string | undefined; runId: string },
): Promise<StoredRunStatus | undefined> {
  const rows = await sql<{ status: StoredRunStatus }>(
    db,
    `SELECT status FROM stackshift.runs WHERE id = $1 AND ($2::text IS NULL OR namespace = $2) FOR UPDATE`,
    [params.runId, params.namespace ?? null],
  )
  return rows[0]?.status
}

/**
 * Ends a locked, unfinished run as CANCELLED: its lease ends (every later
 * write of the attempt is refused), its idempotency key is released, and a
 * pending sleep or wait ends with it. A running run's worker is told on the
 * cancelled channel.
 */
export async function runCancel(db: Executor, params: { runId: string; error: ErrorInfo; isRunning: boolean }): Promise<RunRecord> {
  const rows = await sql<RunRow>(
    db,
    `
    WITH cancelled AS (
      UPDATE stackshift.runs
      SET status = 'cancelled', finished_at = now(), lease_expires_at = NULL, idempotency_key = NULL, error = $2::jsonb
      WHERE id = $1
      RETURNING *
    ),
    ended_steps AS (
      UPDATE stackshift.steps SET status = 'failed', finished_at = now(), error = $2::jsonb
      WHERE run_id = $1 AND status = 'waiting'
    ),
    ended_wait AS (DELETE FROM stackshift.waits WHERE run_id = $1),
    told AS (SELECT pg_notify($4, cancelled.namespace || '/' || cancelled.id::text) FROM cancelled WHERE $3)
    SELECT ${runColumns} FROM cancelled, (SELECT count(*) FROM told) AS t
    `,
    [params.runId, JSON.stringify(params.error), params.isRunning, runCancelledChannel],
  )
  return toRunRecord(rows[0]!)
}
