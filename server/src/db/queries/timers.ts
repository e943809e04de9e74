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
 * resume the run again. Returns the queues that received ready runs.
 */
export async function runPromoteDue(
  db: Executor,
  params: { limit: number },
): Promise<Array<{ namespace: string; queue: string; count: number }>> {
  return sql<{ namespace: string; queue: string; count: number }>(
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
      FROM promoted AS p WHERE p.was_waiting AND s.run_id = p.id AND s.status = 'waiting'
    ),
    timed_out AS (
      DELETE FROM stackshift.waits AS w USING promoted AS p WHERE p.was_waiting AND w.run_id = p.id
    )
    SELECT namespace, queue, count(*)::integer AS count FROM promoted GROUP BY namespace, queue
    `,
    [params.limit],
  )
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
