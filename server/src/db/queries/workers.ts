import { type Executor, sql } from '../database.js'

/** A worker connected to a server by its Connect stream. */
export interface ConnectedWorkerRecord {
  serverId: string
  /** Identifies the stream on its server. */
  streamId: string
  namespace: string
  workerId: string
  queues: string[]
  jobs: string[]
  freeSlots: number
  sdk: string
  connectedAt: Date
  lastSeenAt: Date
}

/**
 * Replaces what one server last reported: its connected workers now (seen
 * now), and none of the ones it reported before and no longer has. Rows
 * that no server renewed for an hour (their server died) go too.
 */
export async function workerReport(
  db: Executor,
  params: { serverId: string; workers: ReadonlyArray<Omit<ConnectedWorkerRecord, 'serverId' | 'lastSeenAt'>> },
): Promise<void> {
  const { workers } = params
  await sql(
    db,
    `
    WITH reported AS (
      INSERT INTO stackshift.workers AS w
        (server_id, stream_id, namespace, worker_id, queues, jobs, free_slots, sdk, connected_at, last_seen_at)
      SELECT $1, v.stream_id, v.namespace, v.worker_id,
        ARRAY(SELECT jsonb_array_elements_text(v.queues::jsonb)), ARRAY(SELECT jsonb_array_elements_text(v.jobs::jsonb)),
        v.free_slots, v.sdk, v.connected_at, now()
      FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::integer[], $8::text[], $9::timestamptz[])
        AS v(stream_id, namespace, worker_id, queues, jobs, free_slots, sdk, connected_at)
      ON CONFLICT (server_id, stream_id) DO UPDATE SET free_slots = excluded.free_slots, last_seen_at = excluded.last_seen_at
      RETURNING 1
    ),
    gone AS (
      DELETE FROM stackshift.workers
      WHERE (server_id = $1 AND stream_id <> ALL($2::text[])) OR last_seen_at < now() - interval '1 hour'
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM reported) AS reported, (SELECT count(*) FROM gone) AS gone
    `,
    [
      params.serverId,
      workers.map((w) => w.streamId),
      workers.map((w) => w.namespace),
      workers.map((w) => w.workerId),
      workers.map((w) => JSON.stringify(w.queues)),
      workers.map((w) => JSON.stringify(w.jobs)),
      workers.map((w) => w.freeSlots),
      workers.map((w) => w.sdk),
      workers.map((w) => w.connectedAt),
    ],
  )
}

/** Forgets every worker a server reported (it is stopping). */
export async function workerForgetServer(db: Executor, params: { serverId: string }): Promise<void> {
  await sql(db, `DELETE FROM stackshift.workers WHERE server_id = $1`, [params.serverId])
}

/** A namespace's workers that a server reported within `seenWithinMs`, by worker id. */
export async function workerList(db: Executor, params: { namespace: string; seenWithinMs: number }): Promise<ConnectedWorkerRecord[]> {
  const rows = await sql<{
    server_id: string
    stream_id: string
    namespace: string
    worker_id: string
    queues: string[]
    jobs: string[]
    free_slots: number
    sdk: string
    connected_at: Date
    last_seen_at: Date
  }>(
    db,
    `SELECT server_id, stream_id, namespace, worker_id, queues, jobs, free_slots, sdk, connected_at, last_seen_at
     FROM stackshift.workers
     WHERE namespace = $1 AND last_seen_at >= now() - $2 * interval '1 millisecond'
     ORDER BY worker_id, server_id, stream_id`,
    [params.namespace, params.seenWithinMs],
  )
  return rows.map((row) => ({
    serverId: row.server_id,
    streamId: row.stream_id,
    namespace: row.namespace,
    workerId: row.worker_id,
    queues: row.queues,
    jobs: row.jobs,
    freeSlots: row.free_slots,
    sdk: row.sdk,
    connectedAt: row.connected_at,
    lastSeenAt: row.last_seen_at,
  }))
}
