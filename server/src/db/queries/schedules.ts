import { type RunStatus, type StoredRunStatus, publicStatus } from '../../core/run.js'
import type { OverlapPolicy, ScheduleDefinition, ScheduleRecord, ScheduleRunRef } from '../../core/schedule.js'
import { readyChannel } from '../channels.js'
import { type Executor, sql } from '../database.js'

/* Schedules: their rows (migration 0011), and the runs they fire. */

interface ScheduleRow {
  namespace: string
  id: string
  cron: string
  timezone: string
  queue: string
  job: string
  payload_json: string
  payload_bytes: number
  overlap: OverlapPolicy
  catchup_window_ms: string
  is_paused: boolean
  next_fire_at: Date | null
  last_tick_at: Date | null
  buffered_at: Date | null
  created_at: Date
  updated_at: Date
}

const scheduleColumns = `namespace, id, cron, timezone, queue, job, payload::text AS payload_json, payload_bytes, overlap,
  catchup_window_ms, is_paused, next_fire_at, last_tick_at, buffered_at, created_at, updated_at`

function toScheduleRecord(row: ScheduleRow): ScheduleRecord {
  return {
    namespace: row.namespace,
    id: row.id,
    cron: row.cron,
    timezone: row.timezone,
    queue: row.queue,
    job: row.job,
    payloadJson: row.payload_json,
    payloadBytes: row.payload_bytes,
    overlap: row.overlap,
    catchupWindowMs: Number(row.catchup_window_ms),
    isPaused: row.is_paused,
    nextFireAt: row.next_fire_at ?? undefined,
    lastTickAt: row.last_tick_at ?? undefined,
    bufferedAt: row.buffered_at ?? undefined,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  }
}

/**
 * Stores a schedule, or redefines the one with its id. A redefinition keeps
 * the paused state, the last tick and a buffered tick; it takes
 * `nextFireAt` (the first tick after now of the new expression) only when
 * the expression or the zone changed, so redeclaring the same schedule at
 * every start of an application neither skips nor repeats a tick.
 */
export async function scheduleUpsert(
  db: Executor,
  params: { namespace: string; definition: ScheduleDefinition; isPaused: boolean; nextFireAt: Date | undefined },
): Promise<{ schedule: ScheduleRecord; isCreated: boolean }> {
  const { definition: d } = params
  const rows = await sql<ScheduleRow & { is_created: boolean }>(
    db,
    `
    INSERT INTO stackshift.schedules AS s
      (namespace, id, cron, timezone, queue, job, payload, payload_bytes, overlap, catchup_window_ms, is_paused, next_fire_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12)
    ON CONFLICT (namespace, id) DO UPDATE SET
      cron = excluded.cron, timezone = excluded.timezone, queue = excluded.queue, job = excluded.job,
      payload = excluded.payload, payload_bytes = excluded.payload_bytes, overlap = excluded.overlap,
      catchup_window_ms = excluded.catchup_window_ms, updated_at = now(),
      next_fire_at = CASE WHEN (s.cron, s.timezone) = (excluded.cron, excluded.timezone) THEN s.next_fire_at ELSE excluded.next_fire_at END
    RETURNING ${scheduleColumns}, xmax = 0 AS is_created
    `,
    [
      params.namespace,
      d.id,
      d.cron,
      d.timezone,
      d.queue,
      d.job,
      d.payloadJson,
      d.payloadBytes,
      d.overlap,
      d.catchupWindowMs,
      params.isPaused,
      params.nextFireAt ?? null,
    ],
  )
  return { schedule: toScheduleRecord(rows[0]!), isCreated: rows[0]!.is_created }
}

export async function scheduleGet(db: Executor, params: { namespace: string; id: string }): Promise<ScheduleRecord | undefined> {
  const rows = await sql<ScheduleRow>(db, `SELECT ${scheduleColumns} FROM stackshift.schedules WHERE namespace = $1 AND id = $2`, [
    params.namespace,
    params.id,
  ])
  return rows[0] && toScheduleRecord(rows[0])
}

/** A page of a namespace's schedules by id, after `afterId`. */
export async function scheduleList(
  db: Executor,
  params: { namespace: string; afterId: string | undefined; limit: number },
): Promise<ScheduleRecord[]> {
  const rows = await sql<ScheduleRow>(
    db,
    `SELECT ${scheduleColumns} FROM stackshift.schedules
     WHERE namespace = $1 AND ($2::text IS NULL OR id > $2 COLLATE "C")
     ORDER BY id COLLATE "C" LIMIT $3`,
    [params.namespace, params.afterId ?? null, params.limit],
  )
  return rows.map(toScheduleRecord)
}

/** Deletes a schedule; false when there was none. Its runs stay. */
export async function scheduleDelete(db: Executor, params: { namespace: string; id: string }): Promise<boolean> {
  const rows = await sql<{ id: string }>(db, `DELETE FROM stackshift.schedules WHERE namespace = $1 AND id = $2 RETURNING id`, [
    params.namespace,
    params.id,
  ])
  return rows.length > 0
}

/** Pauses a schedule; a paused one is left as it is. Undefined when there is none. */
export async function schedulePause(db: Executor, params: { namespace: string; id: string }): Promise<ScheduleRecord | undefined> {
  await sql(db, `UPDATE stackshift.schedules SET is_paused = true, updated_at = now() WHERE namespace = $1 AND id = $2 AND NOT is_paused`, [
    params.namespace,
    params.id,
  ])
  return scheduleGet(db, params)
}

/**
 * Resumes a paused schedule from `nextFireAt` (its first tick after now:
 * ticks that passed while it was paused never fire). One that is not
 * paused is left as it is. Undefined when there is none.
 */
export async function scheduleResume(
  db: Executor,
  params: { namespace: string; id: string; nextFireAt: Date | undefined },
): Promise<ScheduleRecord | undefined> {
  await sql(
    db,
    `UPDATE stackshift.schedules SET is_paused = false, next_fire_at = $3, updated_at = now()
     WHERE namespace = $1 AND id = $2 AND is_paused`,
    [params.namespace, params.id, params.nextFireAt ?? null],
  )
  return scheduleGet(db, params)
}

/** The last `count` runs of each schedule named, by tick, newest first. */
export async function scheduleRecentRuns(
  db: Executor,
  params: { namespace: string; ids: readonly string[]; count: number },
): Promise<Map<string, ScheduleRunRef[]>> {
  const rows = await sql<{ schedule_id: string; run_id: string; status: StoredRunStatus; scheduled_at: Date }>(
    db,
    `SELECT s.id AS schedule_id, r.id::text AS run_id, r.status, r.scheduled_at
     FROM unnest($2::text[]) AS s(id)
     CROSS JOIN LATERAL (
       SELECT id, status, scheduled_at FROM stackshift.runs
       WHERE namespace = $1 AND schedule_id = s.id
       ORDER BY scheduled_at DESC LIMIT $3
     ) AS r`,
    [params.namespace, params.ids, params.count],
  )
  const runs = new Map<string, ScheduleRunRef[]>()
  for (const row of rows) {
    const status: RunStatus = publicStatus(row.status)
    const ref = { runId: row.run_id, status, scheduledAt: row.scheduled_at }
    const found = runs.get(row.schedule_id)
    if (found) found.push(ref)
    else runs.set(row.schedule_id, [ref])
  }
  return runs
}

/**
 * Locks up to `limit` schedules with work to do, for the transaction: those
 * not paused whose next tick is due, oldest first, and those with a buffered
 * tick and no unfinished run left (the run it waited for ended). SKIP LOCKED
 * gives concurrent servers disjoint schedules; a schedule locked by another
 * server's pass is skipped, and once that pass commits its next tick is in
 * the future, so no tick is handled twice. Returns them with the database's
 * clock, which decides what is due on every server alike.
 */
export async function scheduleTakeDue(db: Executor, params: { limit: number }): Promise<{ now: Date; schedules: ScheduleRecord[] }> {
  const rows = await sql<ScheduleRow & { now: Date }>(
    db,
    `
    WITH due AS (
      SELECT namespace, id FROM stackshift.schedules
      WHERE NOT is_paused AND next_fire_at <= now()
      ORDER BY next_fire_at
      LIMIT $1
      FOR UPDATE SKIP LOCKED
    ),
    unblocked AS (
      SELECT namespace, id FROM stackshift.schedules AS s
      WHERE buffered_at IS NOT NULL AND NOT is_paused
        AND NOT EXISTS (
          SELECT 1 FROM stackshift.runs AS r
          WHERE r.namespace = s.namespace AND r.schedule_id = s.id AND r.schedule_id IS NOT NULL AND r.finished_at IS NULL
        )
      LIMIT $1
      FOR UPDATE SKIP LOCKED
    )
    SELECT ${scheduleColumns}, now() AS now FROM stackshift.schedules
    WHERE (namespace, id) IN (SELECT namespace, id FROM due UNION SELECT namespace, id FROM unblocked)
    `,
    [params.limit],
  )
  return { now: rows[0]?.now ?? new Date(), schedules: rows.map(toScheduleRecord) }
}

/** The unfinished runs (queued, running or waiting) of the schedules named, through runs_unfinished_by_schedule. */
export async function scheduleUnfinishedRuns(
  db: Executor,
  params: { schedules: ReadonlyArray<{ namespace: string; id: string }> },
): Promise<Array<{ namespace: string; scheduleId: string; runId: string }>> {
  if (params.schedules.length === 0) return []
  const rows = await sql<{ namespace: string; schedule_id: string; run_id: string }>(
    db,
    `SELECT r.namespace, r.schedule_id, r.id::text AS run_id
     FROM unnest($1::text[], $2::text[]) AS s(namespace, id)
     JOIN stackshift.runs AS r ON r.namespace = s.namespace AND r.schedule_id = s.id AND r.schedule_id IS NOT NULL AND r.finished_at IS NULL`,
    [params.schedules.map((s) => s.namespace), params.schedules.map((s) => s.id)],
  )
  return rows.map((row) => ({ namespace: row.namespace, scheduleId: row.schedule_id, runId: row.run_id }))
}

/** Where a pass left one schedule. */
export interface ScheduleAdvance {
  namespace: string
  id: string
  nextFireAt: Date | undefined
  lastTickAt: Date | undefined
  bufferedAt: Date | undefined
}

/** Moves schedules on after a pass fired their ticks, in one statement; a schedule's last tick never moves back. */
export async function scheduleAdvance(db: Executor, advances: readonly ScheduleAdvance[]): Promise<void> {
  if (advances.length === 0) return
  await sql(
    db,
    `UPDATE stackshift.schedules AS s
     SET next_fire_at = v.next_fire_at, buffered_at = v.buffered_at,
         last_tick_at = CASE WHEN v.last_tick_at IS NULL THEN s.last_tick_at ELSE greatest(s.last_tick_at, v.last_tick_at) END
     FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[])
       AS v(namespace, id, next_fire_at, last_tick_at, buffered_at)
     WHERE s.namespace = v.namespace AND s.id = v.id`,
    [
      advances.map((a) => a.namespace),
      advances.map((a) => a.id),
      advances.map((a) => a.nextFireAt ?? null),
      advances.map((a) => a.lastTickAt ?? null),
      advances.map((a) => a.bufferedAt ?? null),
    ],
  )
}

/** One run to fire: a schedule's tick, with the new run's id and idempotency key. */
export interface ScheduledRunInsert {
  namespace: string
  scheduleId: string
  runId: string
  scheduledAt: Date
  idempotencyKey: string
  /** The key value under flow control (see operations/flow-policies.ts); undefined for runs outside it. */
  concurrencyKey: string | undefined
}

/**
 * Inserts the runs of schedules' ticks in one statement, ready now, each
 * with the job, queue and payload of its schedule as stored (read here, not
 * carried through the server). A tick that already has a run (the unique
 * runs_by_schedule) or whose idempotency key is taken gets none: ON
 * CONFLICT DO NOTHING without a target covers both. When any run is
 * inserted, `readyNotices` are sent as the statement commits. Returns the
 * runs inserted.
 */
export async function scheduleRunInsertMany(
  db: Executor,
  params: { runs: readonly ScheduledRunInsert[]; maxAttempts: number; idempotencyTtlMs: number; readyNotices: readonly string[] },
): Promise<Array<{ namespace: string; runId: string; queue: string; job: string; scheduleId: string }>> {
  if (params.runs.length === 0) return []
  const rows = await sql<{ namespace: string; id: string; queue: string; job: string; schedule_id: string }>(
    db,
    `
    WITH inserted AS (
      INSERT INTO stackshift.runs
        (id, namespace, queue, job, status, priority, attempt, max_attempts, available_at, idempotency_key, idempotency_expires_at,
         payload, payload_bytes, origin, schedule_id, scheduled_at, concurrency_key)
      SELECT v.run_id, s.namespace, s.queue, s.job, 'queued', 0, 0, $6, now(), v.idempotency_key,
        now() + $7 * interval '1 millisecond', s.payload, s.payload_bytes, 'schedule', s.id, v.scheduled_at, v.concurrency_key
      FROM unnest($1::text[], $2::text[], $3::uuid[], $4::timestamptz[], $5::text[], $10::text[])
        AS v(namespace, schedule_id, run_id, scheduled_at, idempotency_key, concurrency_key)
      JOIN stackshift.schedules AS s ON s.namespace = v.namespace AND s.id = v.schedule_id
      ON CONFLICT DO NOTHING
      RETURNING namespace, id, queue, job, schedule_id
    ),
    notified AS (
      SELECT pg_notify($8, notice) FROM unnest($9::text[]) AS notice WHERE EXISTS (SELECT 1 FROM inserted)
    )
    SELECT namespace, id::text AS id, queue, job, schedule_id, (SELECT count(*) FROM notified) AS notified FROM inserted
    `,
    [
      params.runs.map((r) => r.namespace),
      params.runs.map((r) => r.scheduleId),
      params.runs.map((r) => r.runId),
      params.runs.map((r) => r.scheduledAt),
      params.runs.map((r) => r.idempotencyKey),
      params.maxAttempts,
      params.idempotencyTtlMs,
      readyChannel,
      params.readyNotices,
      params.runs.map((r) => r.concurrencyKey ?? null),
    ],
  )
  return rows.map((row) => ({ namespace: row.namespace, runId: row.id, queue: row.queue, job: row.job, scheduleId: row.schedule_id }))
}

/** The run of a schedule's tick, if it has one. */
export async function scheduleRunAt(
  db: Executor,
  params: { namespace: string; scheduleId: string; scheduledAt: Date },
): Promise<string | undefined> {
  const rows = await sql<{ id: string }>(
    db,
    `SELECT id::text AS id FROM stackshift.runs WHERE namespace = $1 AND schedule_id = $2 AND scheduled_at = $3`,
    [params.namespace, params.scheduleId, params.scheduledAt],
  )
  return rows[0]?.id
}

/** Milliseconds until the next tick of a schedule not paused (negative if overdue), or undefined if none. */
export async function scheduleNextDueInMs(db: Executor): Promise<number | undefined> {
  const rows = await sql<{ due_in_ms: number | null }>(
    db,
    `SELECT (extract(epoch FROM min(next_fire_at) - now()) * 1000)::float8 AS due_in_ms FROM stackshift.schedules WHERE NOT is_paused`,
  )
  return rows[0]?.due_in_ms ?? undefined
}
