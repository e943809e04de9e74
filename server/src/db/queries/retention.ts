import { type Executor, sql } from '../database.js'

/*
 * Retention: finished runs (with their steps and attempts) and events are
 * deleted once older than the retention period, in batches.
 */

/**
 * Deletes up to `limit` runs (with their steps and attempts) that finished
 * before `finishedBefore`. `idBelow` bounds the scan to runs created before
 * the cut-off: run ids are time-ordered, so the primary key serves as the
 * index on creation time.
 */
export async function runDeleteFinished(db: Executor, params: { idBelow: string; retentionMs: number; limit: number }): Promise<number> {
  const rows = await sql<{ deleted: number }>(
    db,
    `
    WITH doomed AS (
      SELECT id FROM stackshift.runs
      WHERE id < $1::uuid AND status IN ('completed', 'failed', 'cancelled')
        AND finished_at < now() - $2 * interval '1 millisecond'
      ORDER BY id
      LIMIT $3
      FOR UPDATE SKIP LOCKED
    ),
    deleted_steps AS (DELETE FROM stackshift.steps WHERE run_id IN (SELECT id FROM doomed)),
    deleted_attempts AS (DELETE FROM stackshift.attempts WHERE run_id IN (SELECT id FROM doomed)),
    deleted_runs AS (DELETE FROM stackshift.runs WHERE id IN (SELECT id FROM doomed) RETURNING 1)
    SELECT count(*)::integer AS deleted FROM deleted_runs
    `,
    [params.idBelow, params.retentionMs, params.limit],
  )
  return rows[0]?.deleted ?? 0
}

/** Deletes up to `limit` events received longer than `retentionMs` ago. Returns how many. */
export async function eventDeleteOld(db: Executor, params: { retentionMs: number; limit: number }): Promise<number> {
  const rows = await sql<{ deleted: number }>(
    db,
    `WITH doomed AS (
       SELECT namespace, id FROM stackshift.events
       WHERE received_at < now() - $1 * interval '1 millisecond'
       ORDER BY received_at LIMIT $2
     ),
     deleted AS (
       DELETE FROM stackshift.events AS e USING doomed WHERE e.namespace = doomed.namespace AND e.id = doomed.id RETURNING 1
     )
     SELECT count(*)::integer AS deleted FROM deleted`,
    [params.retentionMs, params.limit],
  )
  return rows[0]?.deleted ?? 0
}
