import type { EventRecord, Fenced, LeaseRef } from '../../core/run.js'
import { type Executor, sql } from '../database.js'

/*
 * Sleeps and event waits (see migration 0003). A suspended run is 'waiting'
 * with available_at = when its sleep ends or its wait times out; its pending
 * step is a row with status 'waiting'; an event wait also has a waits row.
 * The timers (timers.ts) end sleeps and time waits out; an event resumes
 * waits here (waitResumeMatching).
 */

/** A leased run locked for suspending, if the lease is held. */
export interface SuspendingRun {
  namespace: string
  attempt: number
  /**
   * Where an event wait's window starts: when the run's last completed step
   * finished, or when the run was created if none has. A wait step counts from
   * the receipt of the event it took if that came first: a wait that took an
   * event received before it finished later than that event, and the events
   * received in between are the next wait's.
   */
  waitSince: Date
  /** The database clock at the start of the transaction. */
  now: Date
  /**
   * Set when the step to suspend on is already completed: the request repeats
   * one that completed it at once and whose answer was lost. `event` is the
   * event a wait took (undefined for a sleep, or a wait that timed out).
   */
  completedStep: { event: EventRecord | undefined } | undefined
}

interface SuspendingRunRow {
  namespace: string
  attempt: number
  now: Date
  wait_since: Date
  is_step_completed: boolean
  event_id: string | null
  event_name: string | null
  event_data_json: string | null
  event_received_at: Date | null
}

/**
 * Locks the run of a held lease (see db/queries/lease-writes.ts on fencing),
 * and reads the step `stepId` if it is completed. A worker sends a suspension
 * again when it got no answer; if the first completed the step at once (the
 * sleep was over, an event matched), the repeat must not look again: the
 * event is now taken by this very step (eventFindMatch leaves it out), so it
 * would suspend the run on a wait that nothing ends.
 */
export async function waitLockLease(db: Executor, params: Fenced<LeaseRef> & { stepId: string }): Promise<SuspendingRun | undefined> {
  const rows = await sql<SuspendingRunRow>(
    db,
    `SELECT r.namespace, r.attempt, now() AS now,
       greatest(r.created_at, (
         SELECT max(CASE WHEN s.kind = 'wait' THEN least(s.finished_at, (s.result ->> 'receivedAt')::timestamptz) ELSE s.finished_at END)
         FROM stackshift.steps AS s WHERE s.run_id = r.id AND s.status = 'completed'
       )) AS wait_since,
       done.step_id IS NOT NULL AS is_step_completed,
       done.result ->> 'id' AS event_id, done.result ->> 'name' AS event_name, (done.result -> 'data')::text AS event_data_json,
       (done.result ->> 'receivedAt')::timestamptz AS event_received_at
     FROM stackshift.runs AS r
     LEFT JOIN stackshift.steps AS done ON done.run_id = r.id AND done.step_id = $4 AND done.status = 'completed'
     WHERE r.id = $1 AND r.lease_token = $2 AND r.lease_expires_at > now() AND ($3 = '*' OR r.namespace = $3)
     FOR UPDATE OF r`,
    [params.runId, params.leaseToken, params.namespace, params.stepId],
  )
  const row = rows[0]
  if (!row) return undefined
  const event: EventRecord | undefined =
    row.event_id !== null && row.event_name !== null && row.event_data_json !== null && row.event_received_at !== null
      ? { id: row.event_id, name: row.event_name, dataJson: row.event_data_json, receivedAt: row.event_received_at }
      : undefined
  return {
    namespace: row.namespace,
    attempt: row.attempt,
    now: row.now,
    waitSince: row.wait_since,
    completedStep: row.is_step_completed ? { event } : undefined,
  }
}

/** Records a sleep or wait step that completed at once, with its result (JSON text). */
export async function waitCompleteStepNow(
  db: Executor,
  params: { runId: string; stepId: string; kind: 'sleep' | 'wait'; attempt: number; resultJson: string },
): Promise<void> {
  await sql(
    db,
    `INSERT INTO stackshift.steps AS s (run_id, step_id, kind, status, attempt, started_at, finished_at, result)
     VALUES ($1, $2, $3, 'completed', $4, now(), now(), $5::jsonb)
     ON CONFLICT (run_id, step_id) DO UPDATE
       SET kind = excluded.kind, status = 'completed', attempt = excluded.attempt, started_at = excluded.started_at,
           finished_at = excluded.finished_at, wake_at = NULL, result = excluded.result, error = NULL`,
    [params.runId, params.stepId, params.kind, params.attempt, params.resultJson],
  )
}

/**
 * Suspends a locked run on a sleep or wait step: the step waits until
 * `wakeAt` (or `wakeInMs` from now), the lease ends, and the attempt does not
 * count (the run did not fail; it resumes as the same attempt). An event wait
 * also registers its match. Returns the instant the run is due.
 */
export async function waitSuspend(
  db: Executor,
  params: {
    runId: string
    stepId: string
    kind: 'sleep' | 'wait'
    attempt: number
    wake: { at: Date } | { inMs: number }
    event: { namespace: string; name: string; matchJson: string } | undefined
  },
): Promise<Date> {
  const { wake, event } = params
  const rows = await sql<{ wake_at: Date }>(
    db,
    `
    WITH wake AS (
      SELECT coalesce($5::timestamptz, now() + $6::bigint * interval '1 millisecond') AS at
    ),
    step AS (
      INSERT INTO stackshift.steps AS s (run_id, step_id, kind, status, attempt, started_at, wake_at)
      SELECT $1::uuid, $2::text, $3::stackshift.step_kind, 'waiting', $4::integer, now(), wake.at FROM wake
      ON CONFLICT (run_id, step_id) DO UPDATE
        SET kind = excluded.kind, status = 'waiting', attempt = excluded.attempt, started_at = excluded.started_at,
            finished_at = NULL, wake_at = excluded.wake_at, result = NULL, error = NULL
    ),
    registered AS (
      INSERT INTO stackshift.waits (run_id, namespace, event_name, step_id, match)
      SELECT $1::uuid, $7::text, $8::text, $2::text, $9::jsonb WHERE $8::text IS NOT NULL
      ON CONFLICT (run_id) DO UPDATE
        SET namespace = excluded.namespace, event_name = excluded.event_name, step_id = excluded.step_id, match = excluded.match
    )
    UPDATE stackshift.runs AS r
    SET status = 'waiting', available_at = wake.at, lease_expires_at = NULL, lease_token = NULL,
        attempt = r.attempt - 1, is_resumed = true
    FROM wake
    WHERE r.id = $1::uuid
    RETURNING r.available_at AS wake_at
    `,
    [
      params.runId,
      params.stepId,
      params.kind,
      params.attempt,
      'at' in wake ? wake.at : null,
      'inMs' in wake ? wake.inMs : null,
      event?.namespace ?? null,
      event?.name ?? null,
      event?.matchJson ?? null,
    ],
  )
  return rows[0]!.wake_at
}

/**
 * Resumes the runs waiting for `event` whose match its data contains: their
 * wait steps complete with `resultJson`, their registrations go, and they are
 * queued. A run whose wait timed out or was cancelled concurrently is skipped
 * (its status is no longer 'waiting' once the row lock is granted). Only run
 * rows are locked here, as the timer and cancellation lock them first too:
 * locking the waits rows first would deadlock with a timeout firing at once.
 * Sends of one event name never run concurrently (eventLockName), and a run
 * waits for one name at a time.
 */
export async function waitResumeMatching(
  db: Executor,
  params: { namespace: string; event: EventRecord; resultJson: string },
): Promise<Array<{ id: string; queue: string }>> {
  return sql<{ id: string; queue: string }>(
    db,
    `
    WITH matched AS (
      SELECT w.run_id, w.step_id FROM stackshift.waits AS w
      WHERE w.namespace = $1 AND w.event_name = $2 AND (w.match = '{}'::jsonb OR $3::jsonb @> w.match)
    ),
    resumed AS (
      UPDATE stackshift.runs AS r SET status = 'queued', available_at = now()
      FROM matched AS m WHERE r.id = m.run_id AND r.status = 'waiting'
      RETURNING r.id, r.queue, m.step_id
    ),
    completed AS (
      UPDATE stackshift.steps AS s SET status = 'completed', result = $4::jsonb, finished_at = now()
      FROM resumed WHERE s.run_id = resumed.id AND s.step_id = resumed.step_id
    ),
    removed AS (
      DELETE FROM stackshift.waits AS w USING resumed WHERE w.run_id = resumed.id
    )
    SELECT id::text AS id, queue FROM resumed
    `,
    [params.namespace, params.event.name, params.event.dataJson, params.resultJson],
  )
}
