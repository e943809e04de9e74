import { type Executor, sql } from '../database.js'

/**
 * What an unfinished run is doing: `ready` to be claimed (including scheduled
 * runs already due, which the timer is about to promote), `delayed` until a
 * future time (a delay or a retry backoff), `waiting` in a sleep or for an
 * event, or `running` under a lease.
 */
export type QueueDepthState = 'ready' | 'delayed' | 'waiting' | 'running'

/** Unfinished runs of one queue in one state. */
export interface QueueDepth {
  namespace: string
  queue: string
  state: QueueDepthState
  count: number
}

/**
 * Counts unfinished runs by namespace, queue and state, for the metrics
 * endpoint. The table keeps finished runs for history, so each branch names
 * exactly the statuses of one partial index (runs_ready, runs_due,
 * runs_leased): the cost follows the number of unfinished runs, however many
 * finished ones there are. Queues without unfinished runs have no rows.
 */
export async function runCountUnfinished(db: Executor): Promise<QueueDepth[]> {
  return sql<QueueDepth>(
    db,
    `
    SELECT namespace, queue, state, sum(n)::float8 AS count
    FROM (
      SELECT namespace, queue, 'ready' AS state, count(*) AS n
      FROM stackshift.runs WHERE status = 'queued'
      GROUP BY namespace, queue
      UNION ALL
      SELECT namespace, queue, CASE WHEN status = 'waiting' THEN 'waiting' WHEN available_at <= now() THEN 'ready' ELSE 'delayed' END,
        count(*)
      FROM stackshift.runs WHERE status IN ('scheduled', 'waiting')
      GROUP BY 1, 2, 3
      UNION ALL
      SELECT namespace, queue, 'running', count(*)
      FROM stackshift.runs WHERE status = 'running'
      GROUP BY namespace, queue
    ) AS counts
    GROUP BY namespace, queue, state
    `,
  )
}

/** One minute of one queue's activity. */
export interface QueueMinute {
  queue: string
  minute: Date
  completed: number
  failed: number
  /** Runs whose first attempt started in the minute. */
  started: number
  /** Their mean wait from ready to started, in ms; 0 when none started. */
  meanStartLatencyMs: number
}

/**
 * A namespace's last hour, per queue and minute: runs that completed and
 * failed (through runs_finished, migration 0010), and first attempts that
 * started, with how long they waited from ready to started (a first
 * attempt's available_at is when it became ready). Starts are read from the
 * runs that finished in the hour and those running now: a first attempt
 * that started in the hour and is now waiting or queued for a retry is not
 * counted.
 */
export async function runListRecentMinutes(db: Executor, params: { namespace: string; queue: string | undefined }): Promise<QueueMinute[]> {
  return sql<QueueMinute>(
    db,
    `
    WITH recent AS (
      SELECT queue, status, attempt, available_at, started_at, finished_at FROM stackshift.runs
      WHERE namespace = $1 AND ($2::text IS NULL OR queue = $2) AND finished_at >= now() - interval '1 hour'
      UNION ALL
      SELECT queue, status, attempt, available_at, started_at, NULL FROM stackshift.runs
      WHERE status = 'running' AND namespace = $1 AND ($2::text IS NULL OR queue = $2)
    ),
    events AS (
      SELECT queue, date_trunc('minute', finished_at) AS minute, (status = 'completed')::int AS completed, (status = 'failed')::int AS failed,
        0 AS started, NULL::float8 AS latency_ms
      FROM recent WHERE finished_at IS NOT NULL AND status IN ('completed', 'failed')
      UNION ALL
      SELECT queue, date_trunc('minute', started_at), 0, 0, 1, extract(epoch FROM started_at - available_at) * 1000
      FROM recent WHERE attempt = 1 AND started_at >= now() - interval '1 hour'
    )
    SELECT queue, minute, sum(completed)::float8 AS completed, sum(failed)::float8 AS failed, sum(started)::float8 AS started,
      coalesce(avg(greatest(latency_ms, 0)), 0)::float8 AS "meanStartLatencyMs"
    FROM events GROUP BY queue, minute ORDER BY queue, minute
    `,
    [params.namespace, params.queue ?? null],
  )
}
