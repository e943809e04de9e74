import type { EventRecord } from '../../core/run.js'
import { type Executor, sql } from '../database.js'

interface EventRow {
  id: string
  name: string
  data_json: string
  received_at: Date
}

function toEventRecord(row: EventRow): EventRecord {
  return { id: row.id, name: row.name, dataJson: row.data_json, receivedAt: row.received_at }
}

/**
 * Serializes, until commit, the transactions that send or wait for events of
 * one name (see migration 0003). Distinct names may share a lock when their
 * hashes collide; that only serializes them.
 */
export async function eventLockName(db: Executor, params: { namespace: string; name: string }): Promise<void> {
  await sql(db, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [`stackshift.event:${params.namespace}:${params.name}`])
}

/**
 * Stores an event unless its id is taken. Received at the clock time of the
 * insert, after eventLockName: events and wait registrations of one name are
 * then ordered the same way by time and by lock.
 */
export async function eventInsert(
  db: Executor,
  params: { namespace: string; id: string; name: string; dataJson: string },
): Promise<EventRecord | undefined> {
  const rows = await sql<EventRow>(
    db,
    `INSERT INTO stackshift.events (namespace, id, name, received_at, data)
     VALUES ($1, $2, $3, clock_timestamp(), $4::jsonb)
     ON CONFLICT (namespace, id) DO NOTHING
     RETURNING id, name, data::text AS data_json, received_at`,
    [params.namespace, params.id, params.name, params.dataJson],
  )
  return rows[0] && toEventRecord(rows[0])
}

export async function eventFind(db: Executor, params: { namespace: string; id: string }): Promise<EventRecord | undefined> {
  const rows = await sql<EventRow>(
    db,
    `SELECT id, name, data::text AS data_json, received_at FROM stackshift.events WHERE namespace = $1 AND id = $2`,
    [params.namespace, params.id],
  )
  return rows[0] && toEventRecord(rows[0])
}

/**
 * The earliest event of `name` received since `since` whose data contains
 * `matchJson`, leaving out events that already resumed a wait of `runId`
 * (a loop of waits consumes events one by one).
 */
export async function eventFindMatch(
  db: Executor,
  params: { namespace: string; name: string; matchJson: string; since: Date; runId: string },
): Promise<EventRecord | undefined> {
  const rows = await sql<EventRow>(
    db,
    `SELECT e.id, e.name, e.data::text AS data_json, e.received_at FROM stackshift.events AS e
     WHERE e.namespace = $1 AND e.name = $2 AND e.received_at >= $3
       AND ($4::jsonb = '{}'::jsonb OR e.data @> $4::jsonb)
       AND NOT EXISTS (
         SELECT 1 FROM stackshift.steps AS s
         WHERE s.run_id = $5 AND s.kind = 'wait' AND s.status = 'completed' AND s.result ->> 'id' = e.id AND s.result ->> 'name' = e.name
       )
     ORDER BY e.received_at, e.id
     LIMIT 1`,
    [params.namespace, params.name, params.since, params.matchJson, params.runId],
  )
  return rows[0] && toEventRecord(rows[0])
}

/** Where a page of events ends: the last event's receipt time in microseconds (as stored, finer than a Date) and id. */
export interface EventCursor {
  receivedAtUs: string
  id: string
}

/** A page of a namespace's events, newest first (receipt time, then id), after `after`, the previous page's end. */
export async function eventList(
  db: Executor,
  params: { namespace: string; name: string | undefined; limit: number; after: EventCursor | undefined },
): Promise<Array<EventRecord & { cursor: EventCursor }>> {
  const rows = await sql<EventRow & { received_at_us: string }>(
    db,
    `SELECT id, name, data::text AS data_json, received_at,
       ((extract(epoch FROM received_at) * 1000000)::bigint)::text AS received_at_us
     FROM stackshift.events
     WHERE namespace = $1 AND ($2::text IS NULL OR name = $2)
       AND ($3::bigint IS NULL OR (received_at, id) < (timestamptz 'epoch' + $3::bigint * interval '1 microsecond', $4::text))
     ORDER BY received_at DESC, id DESC
     LIMIT $5`,
    [params.namespace, params.name ?? null, params.after?.receivedAtUs ?? null, params.after?.id ?? null, params.limit],
  )
  return rows.map((row) => ({ ...toEventRecord(row), cursor: { receivedAtUs: row.received_at_us, id: row.id } }))
}

/**
 * The runs that events resumed: wait steps completed with the event (their
 * result names it), through the partial index of completed wait steps by
 * event id (migration 0010). Steps a replay copied from its source (attempt
 * 0) are left out: the event resumed the source, not the copy.
 */
export async function eventListDeliveries(
  db: Executor,
  params: { namespace: string; events: ReadonlyArray<{ id: string; name: string }> },
): Promise<Array<{ eventId: string; runId: string; stepId: string }>> {
  if (params.events.length === 0) return []
  const rows = await sql<{ event_id: string; run_id: string; step_id: string }>(
    db,
    `SELECT e.id AS event_id, s.run_id::text AS run_id, s.step_id
     FROM unnest($2::text[], $3::text[]) AS e(id, name)
     JOIN stackshift.steps AS s ON s.result ->> 'id' = e.id AND s.kind = 'wait' AND s.status = 'completed'
     JOIN stackshift.runs AS r ON r.id = s.run_id AND r.namespace = $1
     WHERE s.result ->> 'name' = e.name AND s.attempt > 0
     ORDER BY s.run_id, s.step_id`,
    [params.namespace, params.events.map((event) => event.id), params.events.map((event) => event.name)],
  )
  return rows.map((row) => ({ eventId: row.event_id, runId: row.run_id, stepId: row.step_id }))
}
