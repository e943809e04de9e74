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
