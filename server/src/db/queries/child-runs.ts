import type { ChildRunRequest, ChildRunSummary, Fenced, LeaseRef, StoredRunStatus, TraceContext } from '../../core/run.js'
import { type Executor, sql } from '../database.js'

/*
 * Child runs (migration 0012). A parent's step.invoke is an 'invoke' step
 * row, 'waiting' until its child finishes (the trigger function
 * resume_parent completes it) or until its wake_at, when the timers time it
 * out (timers.ts). A child names its parent and that step; the unique index
 * runs_by_parent on the pair starts each child once.
 */

/** A leased parent run locked for starting children. */
export interface InvokingParent {
  namespace: string
  attempt: number
  traceContext: TraceContext | undefined
}

/** Locks the run of a held lease (see db/queries/lease-writes.ts on fencing) to start its children. */
export async function childParentLockLease(db: Executor, params: Fenced<LeaseRef>): Promise<InvokingParent | undefined> {
  const rows = await sql<{ namespace: string; attempt: number; trace_context: TraceContext | null }>(
    db,
    `SELECT namespace, attempt, trace_context FROM stackshift.runs
     WHERE id = $1 AND lease_token = $2 AND lease_expires_at > now() AND ($3 = '*' OR namespace = $3)
     FOR UPDATE`,
    [params.runId, params.leaseToken, params.namespace],
  )
  const row = rows[0]
  return row ? { namespace: row.namespace, attempt: row.attempt, traceContext: row.trace_context ?? undefined } : undefined
}

/**
 * Inserts the children of a parent's invoke steps, ready at once, with the
 * parent's trace context (a child's attempts belong to the parent's trace).
 * A step that already has a child gets no second one (runs_by_parent): the
 * insert skips it. Returns the queue and job of each child inserted, and
 * sends the ready notice when there are any, delivered at commit.
 */
export async function childRunInsertMany(
  db: Executor,
  params: {
    parentRunId: string
    namespace: string
    traceContext: TraceContext | undefined
    /** Each with its key value under flow control (operations/flow-policies.ts), undefined outside it. */
    children: ReadonlyArray<ChildRunRequest & { id: string; concurrencyKey: string | undefined }>
    readyNotice: (queues: readonly string[]) => string
    readyChannel: string
  },
): Promise<Array<{ queue: string; job: string }>> {
  const { children } = params
  const rows = await sql<{ queue: string; job: string }>(
    db,
    `
    WITH inserted AS (
      INSERT INTO stackshift.runs
        (id, namespace, queue, job, status, priority, attempt, max_attempts, available_at, payload, payload_bytes, trace_context,
         origin, parent_run_id, parent_step_id, concurrency_key)
      SELECT v.id, $1, v.queue, v.job, 'queued', v.priority, 0, v.max_attempts, now(), v.payload::jsonb, v.payload_bytes, $2::jsonb,
        'invoke', $3::uuid, v.step_id, v.concurrency_key
      FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::integer[], $9::smallint[], $10::integer[], $11::text[], $12::text[])
        AS v(id, queue, job, payload, payload_bytes, priority, max_attempts, step_id, concurrency_key)
      ON CONFLICT (parent_run_id, parent_step_id) WHERE parent_run_id IS NOT NULL DO NOTHING
      RETURNING queue, job
    )
    SELECT queue, job FROM inserted
    `,
    [
      params.namespace,
      params.traceContext ? JSON.stringify(params.traceContext) : null,
      params.parentRunId,
      children.map((child) => child.id),
      children.map((child) => child.queue),
      children.map((child) => child.job),
      children.map((child) => child.payloadJson),
      children.map((child) => child.payloadBytes),
      children.map((child) => child.priority),
      children.map((child) => child.maxAttempts),
      children.map((child) => child.stepId),
      children.map((child) => child.concurrencyKey ?? null),
    ],
  )
  const queues = [...new Set(rows.map((row) => row.queue))]
  if (queues.length > 0) await sql(db, 'SELECT pg_notify($1, $2)', [params.readyChannel, params.readyNotice(queues)])
  return rows
}

/**
 * Records a parent's invoke steps as waiting, each until now + its timeout.
 * A step already waiting keeps its deadline (the parent sent the invoke
 * again after resuming for another step's timeout: the child started with
 * the first), and a completed one keeps its outcome.
 */
export async function childStepsWait(
  db: Executor,
  params: { parentRunId: string; attempt: number; steps: ReadonlyArray<{ stepId: string; timeoutMs: number }> },
): Promise<void> {
  await sql(
    db,
    `
    INSERT INTO stackshift.steps AS s (run_id, step_id, kind, status, attempt, started_at, wake_at)
    SELECT $1::uuid, v.step_id, 'invoke', 'waiting', $2::integer, now(), now() + v.timeout_ms * interval '1 millisecond'
    FROM unnest($3::text[], $4::bigint[]) AS v(step_id, timeout_ms)
    ON CONFLICT (run_id, step_id) DO UPDATE
      SET kind = excluded.kind, status = 'waiting', attempt = excluded.attempt, started_at = excluded.started_at,
          finished_at = NULL, wake_at = excluded.wake_at, result = NULL, error = NULL
      WHERE s.status = 'failed'
    `,
    [params.parentRunId, params.attempt, params.steps.map((step) => step.stepId), params.steps.map((step) => step.timeoutMs)],
  )
}

/**
 * Ends a locked parent's lease after it started children: it waits until
 * the earliest deadline of its waiting steps, or, when none waits (every
 * child it named had already finished), it is queued at once to replay
 * their outcomes. As with sleeps, the attempt does not count. Returns what
 * became of it.
 */
export async function childParentSuspend(
  db: Executor,
  params: { parentRunId: string },
): Promise<{ status: 'waiting' | 'queued'; availableAt: Date; queue: string }> {
  const rows = await sql<{ status: 'waiting' | 'queued'; available_at: Date; queue: string }>(
    db,
    `
    UPDATE stackshift.runs AS r
    SET status = CASE WHEN w.wake_at IS NULL THEN 'queued' ELSE 'waiting' END::stackshift.run_status,
        available_at = coalesce(w.wake_at, now()), lease_expires_at = NULL, lease_token = NULL,
        attempt = r.attempt - 1, is_resumed = true
    FROM (SELECT min(wake_at) AS wake_at FROM stackshift.steps WHERE run_id = $1 AND status = 'waiting') AS w
    WHERE r.id = $1
    RETURNING r.status, r.available_at, r.queue
    `,
    [params.parentRunId],
  )
  const row = rows[0]!
  return { status: row.status, availableAt: row.available_at, queue: row.queue }
}

/** A run's children, oldest first. */
export async function childRunList(db: Executor, params: { parentRunId: string }): Promise<ChildRunSummary[]> {
  const rows = await sql<{ id: string; parent_step_id: string; queue: string; job: string; status: StoredRunStatus }>(
    db,
    `SELECT id::text AS id, parent_step_id, queue, job, status FROM stackshift.runs WHERE parent_run_id = $1 ORDER BY id`,
    [params.parentRunId],
  )
  return rows.map((row) => ({ runId: row.id, stepId: row.parent_step_id, queue: row.queue, job: row.job, status: row.status }))
}

/**
 * Locks the unfinished descendants of a run (children, theirs, ...), deepest
 * first, and returns them with their parent and status. Cancelling a run locks these
 * before the run itself: a child that finishes locks itself and then its
 * parent (resume_parent), so a cascade that took the parent first could
 * deadlock with it. The walk stops at finished runs: a finished run's
 * children were cancelled with it, or are waited for by nobody.
 */
export async function childRunLockDescendants(
  db: Executor,
  params: { runId: string },
): Promise<Array<{ id: string; parentRunId: string; status: StoredRunStatus }>> {
  return sql<{ id: string; parentRunId: string; status: StoredRunStatus }>(
    db,
    `
    WITH RECURSIVE tree AS (
      SELECT r.id, 1 AS depth FROM stackshift.runs AS r WHERE r.parent_run_id = $1 AND r.finished_at IS NULL
      UNION ALL
      SELECT r.id, tree.depth + 1 FROM stackshift.runs AS r JOIN tree ON r.parent_run_id = tree.id WHERE r.finished_at IS NULL
    )
    SELECT r.id::text AS id, r.parent_run_id::text AS "parentRunId", r.status FROM stackshift.runs AS r JOIN tree ON tree.id = r.id
    ORDER BY tree.depth DESC, r.id
    FOR UPDATE OF r
    `,
    [params.runId],
  )
}
