import { type Executor, sql } from '../database.js'

/*
 * Timers. Every future instant of a run is its available_at while it is
 * 'scheduled' (a delay or a retry backoff) or 'waiting' (a sleep, or an event
 * wait's timeout); the runs_due index holds exactly those runs.
 */

/**
 * Ends due sleeps and times out due waits, and makes due scheduled runs
 * ready (delays, retry backoffs), in one statement: a timed-out wait's step
 * completes with null and its registration goes, so a later event cannot
 * resume the run again. A parent's invoke steps (step.invoke) whose deadline
 * passed complete with a "timed_out" outcome; those with a later deadline
 * keep waiting for their child (the parent, resumed, sends them again and
 * waits on). Returns the queues that received ready runs, and the children
 * nobody waits for any more that are still unfinished (to be cancelled).
 */
export async function runPromoteDue(
  db: Executor,
  params: { limit: number },
): Promise<{ queues: Array<{ namespace: string; queue: string; count: number }>; abandonedChildRunIds: string[] }> {
  const rows = await sql<{ namespace: string | null; queue: string | null; count: number; child_run_id: string | null }>(
    db,
    `
    WITH due AS (
      SELECT id, status FROM stackshift.runs
      WHERE status IN ('scheduled', 'waiting') AND available_at <= now()
      ORDER BY available_at
      LIMIT $1
      FOR UPDATE SKIP LOCKED
    ),
    promoted AS (
      UPDATE stackshift.runs AS r SET status = 'queued' FROM due WHERE r.id = due.id
      RETURNING r.id, r.namespace, r.queue, due.status = 'waiting' AS was_waiting
    ),
    woken AS (
      UPDATE stackshift.steps AS s SET status = 'completed', result = 'null'::jsonb, finished_at = now()
      FROM promoted AS p WHERE p.was_waiting AND s.run_id = p.id AND s.status = 'waiting' AND s.kind <> 'invoke'
    ),
    invoke_timed_out AS (
      UPDATE stackshift.steps AS s SET status = 'completed', finished_at = now(),
        result = jsonb_build_object('childRunId', c.id::text, 'status', 'timed_out', 'error', jsonb_build_object(
          'name', 'ChildRunTimeoutError', 'message', 'the child run did not finish within the timeout of step.invoke'))
      FROM promoted AS p, stackshift.runs AS c
      WHERE p.was_waiting AND s.run_id = p.id AND s.status = 'waiting' AND s.kind = 'invoke' AND s.wake_at <= now()
        AND c.parent_run_id = s.run_id AND c.parent_step_id = s.step_id
      RETURNING c.id, c.finished_at IS NULL AS is_unfinished
    ),
    timed_out AS (
      DELETE FROM stackshift.waits AS w USING promoted AS p WHERE p.was_waiting AND w.run_id = p.id
    )
    SELECT namespace, queue, count(*)::integer AS count, NULL AS child_run_id FROM promoted GROUP BY namespace, queue
    UNION ALL
    SELECT NULL, NULL, 0, id::text FROM invoke_timed_out WHERE is_unfinished
    `,
    [params.limit],
  )
  return {
    queues: rows.flatMap((row) =>
      row.namespace !== null && row.queue !== null ? [{ namespace: row.namespace, queue: row.queue, count: row.count }] : [],
    ),
    abandonedChildRunIds: rows.flatMap((row) => (row.child_run_id !== null ? [row.child_run_id] : [])),
  }
}

/** Milliseconds until the next timer is due (negative if overdue), or undefined if none. */
export async function runNextDueInMs(db: Executor): Promise<number | undefined> {
  const rows = await sql<{ due_in_ms: number | null }>(
    db,
    `SELECT (extract(epoch FROM min(available_at) - now()) * 1000)::float8 AS due_in_ms
     FROM stackshift.runs WHERE status IN ('scheduled', 'waiting')`,
  )
  return rows[0]?.due_in_ms ?? undefined
}
