import type { ClaimedRun, ErrorInfo, LeaseRef, NewRun, RunFilter, RunRecord, StoredRunStatus, TraceContext } from '../../core/run.js'
import { runIdTime } from '../../core/run-id.js'
import { readyChannel, runCancelledChannel } from '../channels.js'
import { type Executor, sql } from '../database.js'

/*
 * Every statement that writes about a leased run checks, in the statement
 * itself, that the lease is held: same lease token and a deadline still in the
 * future on the database clock (only running runs have a deadline: constraint
 * runs_lease_while_running; status is left out so the planner probes runs by
 * id). A write that matches no row therefore means the lease is lost; callers
 * turn that into LeaseLostError.
 */

/** A lease as returned by a statement: run id and the token that matched. */
interface LeaseRow {
  id: string
  lease_token: string
}

/** Identifies one lease: a run id alone is ambiguous when a stale and a current write meet in one batch. */
export function leaseKey(runId: string, leaseToken: string): string {
  return `${runId}/${leaseToken}`
}

function leaseKeys(rows: readonly LeaseRow[]): Set<string> {
  return new Set(rows.map((row) => leaseKey(row.id, row.lease_token)))
}

/**
 * The condition that makes a statement find a batch's runs by primary key,
 * for statements that join runs `r` with a batch (a MATERIALIZED CTE with the
 * run ids in `column`). Joined on the ids alone, the planner estimates the
 * match from the lease columns' statistics, which are mostly NULL (few runs
 * hold a lease at any time): it expects one run and, on a table of up to a
 * few hundred thousand runs, scans it whole and compares every run it keeps
 * with every batch item. A completion of 500 runs took 136 ms on 100,000 runs
 * instead of 8. An id list the planner cannot see into (a sub-select) is
 * always probed through the primary key, and the batch is then hash-joined.
 */
export function runsOfBatch(batch: string, column = 'id'): string {
  return `r.id = ANY(ARRAY(SELECT ${column} FROM ${batch}))`
}

interface ClaimedRow {
  run_id: string
  run_queue: string
  run_job: string
  payload_json: string
  run_attempt: number
  run_max_attempts: number
  run_priority: number
  run_lease_token: string
  lease_expires_ms: number
  available_ms: number
  memo: Array<[string, string | null]> | null
  trace_context: TraceContext | null
}

/** A run to insert already leased to an idle worker (a direct handoff). */
export interface InsertLease {
  leaseMs: number
  workerId: string
}

/** What an insert stored for one run. */
export interface InsertedRun {
  /** Set when the run was inserted leased (its first attempt). */
  lease: { token: string; expiresAt: Date; availableAt: Date } | undefined
}

/**
 * Inserts runs; with an idempotency key that is already taken, inserts
 * nothing for that entry. Runs with an entry in `leases` are inserted already
 * leased (status running, attempt 1). Returns what was inserted, by id. When
 * any inserted run is ready to be claimed, sends one notification
 * (`readyNotice`) in the same statement, delivered when it commits.
 */
export async function runInsertMany(
  db: Executor,
  params: { namespace: string; runs: readonly NewRun[]; leases: ReadonlyArray<InsertLease | undefined>; readyNotice: string },
): Promise<Map<string, InsertedRun>> {
  const { runs, leases } = params
  const rows = await sql<{
    id: string
    lease_token: string | null
    lease_expires_ms: number | null
    available_ms: number | null
  }>(
    db,
    `
    WITH input AS (
      SELECT v.*,
        CASE WHEN v.run_at IS NOT NULL THEN greatest(v.run_at, now())
             ELSE now() + v.delay_ms * interval '1 millisecond' END AS available_at
      FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::timestamptz[],
                  $9::smallint[], $10::integer[], $14::bigint[], $15::text[], $16::text[])
        AS v(id, queue, job, payload, idempotency_key, idempotency_ttl_ms, delay_ms, run_at, priority, max_attempts, lease_ms, worker_id,
             trace_context)
    ),
    inserted AS (
      INSERT INTO stackshift.runs
        (id, namespace, queue, job, status, priority, attempt, max_attempts, available_at, idempotency_key, idempotency_expires_at,
         lease_token, lease_expires_at, started_at, worker_id, payload, trace_context)
      SELECT id, $11, queue, job,
        (CASE WHEN lease_ms > 0 THEN 'running' WHEN available_at > now() THEN 'scheduled' ELSE 'queued' END)::stackshift.run_status,
        priority, CASE WHEN lease_ms > 0 THEN 1 ELSE 0 END, max_attempts, available_at, idempotency_key,
        CASE WHEN idempotency_key IS NOT NULL THEN now() + idempotency_ttl_ms * interval '1 millisecond' END,
        CASE WHEN lease_ms > 0 THEN gen_random_uuid() END,
        CASE WHEN lease_ms > 0 THEN now() + lease_ms * interval '1 millisecond' END,
        CASE WHEN lease_ms > 0 THEN now() END,
        worker_id,
        payload::jsonb,
        trace_context::jsonb
      FROM input
      ON CONFLICT (namespace, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
      RETURNING id, status, lease_token, lease_expires_at, created_at, available_at
    ),
    notified AS (
      SELECT pg_notify($12, $13) FROM inserted WHERE status = 'queued' LIMIT 1
    )
    -- Times are only needed for runs handed to a worker; bulk inserts read back just the ids.
    SELECT inserted.id::text AS id, inserted.lease_token::text AS lease_token,
      CASE WHEN inserted.lease_token IS NOT NULL THEN (extract(epoch FROM inserted.lease_expires_at) * 1000)::float8 END AS lease_expires_ms,
      CASE WHEN inserted.lease_token IS NOT NULL THEN (extract(epoch FROM inserted.available_at) * 1000)::float8 END AS available_ms,
      (SELECT count(*) FROM notified) AS notified
    FROM inserted
    `,
    [
      runs.map((r) => r.id),
      runs.map((r) => r.queue),
      runs.map((r) => r.job),
      runs.map((r) => r.payloadJson),
      runs.map((r) => r.idempotencyKey ?? null),
      runs.map((r) => r.idempotencyTtlMs),
      runs.map((r) => r.delayMs),
      runs.map((r) => r.runAt ?? null),
      runs.map((r) => r.priority),
      runs.map((r) => r.maxAttempts),
      params.namespace,
      readyChannel,
      params.readyNotice,
      leases.map((lease) => lease?.leaseMs ?? 0),
      leases.map((lease) => lease?.workerId ?? null),
      runs.map((r) => (r.traceContext ? JSON.stringify(r.traceContext) : null)),
    ],
  )
  return new Map(
    rows.map((row) => [
      row.id,
      row.lease_token
        ? { lease: { token: row.lease_token, expiresAt: new Date(row.lease_expires_ms!), availableAt: new Date(row.available_ms!) } }
        : { lease: undefined },
    ]),
  )
}

/** Runs holding the given idempotency keys, and whether each key's TTL has run out. */
export async function runFindByIdempotencyKeys(
  db: Executor,
  params: { namespace: string; keys: readonly string[] },
): Promise<Array<{ id: string; idempotencyKey: string; isExpired: boolean }>> {
  const rows = await sql<{ id: string; idempotency_key: string; is_expired: boolean }>(
    db,
    `SELECT id::text AS id, idempotency_key, idempotency_expires_at <= now() AS is_expired
     FROM stackshift.runs WHERE namespace = $1 AND idempotency_key = ANY($2::text[])`,
    [params.namespace, params.keys],
  )
  return rows.map((row) => ({ id: row.id, idempotencyKey: row.idempotency_key, isExpired: row.is_expired }))
}

/**
 * Releases idempotency keys whose TTL has run out, so a new run can take them.
 * The expiry is re-checked here: a key renewed in between stays.
 */
export async function runReleaseExpiredIdempotencyKeys(
  db: Executor,
  params: { namespace: string; keys: readonly string[] },
): Promise<void> {
  await sql(
    db,
    `UPDATE stackshift.runs SET idempotency_key = NULL
     WHERE namespace = $1 AND idempotency_key = ANY($2::text[]) AND idempotency_expires_at <= now()`,
    [params.namespace, params.keys],
  )
}

/** Claim order: higher priority first, then the time the run became ready, then its id (as the ready index orders them). */
function compareClaimOrder(a: ClaimedRow, b: ClaimedRow): number {
  return b.run_priority - a.run_priority || a.available_ms - b.available_ms || (a.run_id < b.run_id ? -1 : a.run_id > b.run_id ? 1 : 0)
}

/**
 * Leases up to `limit` ready runs of the given queues and jobs, and returns
 * them in claim order with the results of their completed steps (the memo).
 * The statement is the claim_runs function (migration 0006), which pins its
 * plan to the ready index and leaves the sort to this function: it costs
 * PostgreSQL less here. Instants come back as epoch milliseconds, cheaper to
 * read than timestamp text; the creation time is the one in the run id.
 */
export async function runClaim(
  db: Executor,
  params: { namespace: string; queues: readonly string[]; jobs: readonly string[]; limit: number; leaseMs: number; workerId: string },
): Promise<ClaimedRun[]> {
  const rows = await sql<ClaimedRow>(db, `SELECT * FROM stackshift.claim_runs($1, $2, $3, $4, $5, $6)`, [
    params.namespace,
    params.queues,
    params.jobs,
    params.limit,
    params.leaseMs,
    params.workerId,
  ])
  return rows.sort(compareClaimOrder).map((row) => ({
    id: row.run_id,
    namespace: params.namespace,
    queue: row.run_queue,
    job: row.run_job,
    payloadJson: row.payload_json,
    attempt: row.run_attempt,
    maxAttempts: row.run_max_attempts,
    leaseToken: row.run_lease_token,
    leaseExpiresAt: new Date(row.lease_expires_ms),
    createdAt: new Date(runIdTime(row.run_id)),
    availableAt: new Date(row.available_ms),
    memo: (row.memo ?? []).map(([stepId, resultJson]) => ({ stepId, resultJson: resultJson ?? undefined })),
    traceContext: row.trace_context ?? undefined,
  }))
}

/** How many runs of one queue and job a statement changed. */
export interface RunCount {
  namespace: string
  queue: string
  job: string
  count: number
}

/**
 * Completes leased runs. Returns how many completed, per queue and job (for
 * metrics); fewer in all than given means some leases were not held, and the
 * caller looks up which.
 *
 * The batch travels as text that PostgreSQL splits itself: ids and tokens
 * joined by commas (UUIDs never contain one), results as one JSON array of
 * `[result]` or `[]` (no result). Building PostgreSQL array literals in
 * JavaScript, and reading back a row per run, cost the server more than the
 * rest of the statement; the counts come back as one row per queue and job.
 */
export async function runComplete(
  db: Executor,
  params: { completions: ReadonlyArray<LeaseRef & { resultJson: string | undefined }> },
): Promise<RunCount[]> {
  const items = params.completions
  const rows = await sql<RunCount>(
    db,
    `
    WITH v AS MATERIALIZED (
      SELECT * FROM ROWS FROM (
        unnest(string_to_array($1, ',')::uuid[]),
        unnest(string_to_array($2, ',')::uuid[]),
        json_array_elements($3::json)
      ) AS v(id, lease_token, result)
    ),
    completed AS (
      UPDATE stackshift.runs AS r
      SET status = 'completed', result = (v.result -> 0)::jsonb, finished_at = now(), lease_expires_at = NULL
      FROM v
      WHERE ${runsOfBatch('v')} AND r.id = v.id AND r.lease_token = v.lease_token AND r.lease_expires_at > now()
      RETURNING r.namespace, r.queue, r.job
    )
    SELECT namespace, queue, job, count(*)::integer AS count FROM completed GROUP BY namespace, queue, job
    `,
    [
      items.map((c) => c.runId).join(','),
      items.map((c) => c.leaseToken).join(','),
      `[${items.map((c) => (c.resultJson === undefined ? '[]' : `[${c.resultJson}]`)).join(',')}]`,
    ],
  )
  return rows
}

/**
 * Status and last lease token of runs, to tell a repeated write (its effect is
 * already stored under the same token) from a write of a lost lease.
 */
export async function runFindLeaseOutcomes(
  db: Executor,
  params: { runIds: readonly string[] },
): Promise<Map<string, { status: StoredRunStatus; leaseToken: string | undefined }>> {
  const rows = await sql<{ id: string; status: StoredRunStatus; lease_token: string | null }>(
    db,
    `SELECT id::text AS id, status, lease_token::text AS lease_token FROM stackshift.runs WHERE id = ANY($1::uuid[])`,
    [params.runIds],
  )
  return new Map(rows.map((row) => [row.id, { status: row.status, leaseToken: row.lease_token ?? undefined }]))
}

/** Extends held leases to `leaseMs` from now. Returns the leases (leaseKey) extended. */
export async function runHeartbeat(db: Executor, params: { leases: readonly LeaseRef[]; leaseMs: number }): Promise<Set<string>> {
  const rows = await sql<LeaseRow>(
    db,
    `
    WITH v AS MATERIALIZED (SELECT * FROM unnest($2::uuid[], $3::uuid[]) AS v(id, lease_token))
    UPDATE stackshift.runs AS r
    SET lease_expires_at = now() + $1 * interval '1 millisecond'
    FROM v
    WHERE ${runsOfBatch('v')} AND r.id = v.id AND r.lease_token = v.lease_token AND r.lease_expires_at > now()
    RETURNING r.id::text AS id, v.lease_token::text AS lease_token
    `,
    [params.leaseMs, params.leases.map((l) => l.runId), params.leases.map((l) => l.leaseToken)],
  )
  return leaseKeys(rows)
}

/** A leased run locked for ending its attempt. */
export interface LockedAttempt {
  id: string
  /** The lease token the attempt held (cleared on the row when the lease expired). */
  leaseToken: string
  namespace: string
  queue: string
  job: string
  attempt: number
  maxAttempts: number
  startedAt: Date | undefined
  workerId: string | undefined
  traceContext: TraceContext | undefined
}

interface LockedAttemptRow {
  id: string
  lease_token: string
  namespace: string
  queue: string
  job: string
  attempt: number
  max_attempts: number
  started_at: Date | null
  worker_id: string | null
  trace_context: TraceContext | null
}

function toLockedAttempt(row: LockedAttemptRow): LockedAttempt {
  return {
    id: row.id,
    leaseToken: row.lease_token,
    namespace: row.namespace,
    queue: row.queue,
    job: row.job,
    attempt: row.attempt,
    maxAttempts: row.max_attempts,
    startedAt: row.started_at ?? undefined,
    workerId: row.worker_id ?? undefined,
    traceContext: row.trace_context ?? undefined,
  }
}

/**
 * Locks the held leases among `leases` (in id order, so concurrent callers
 * cannot deadlock), for a transaction that ends their attempts.
 */
export async function runLockHeldLeases(db: Executor, params: { leases: readonly LeaseRef[] }): Promise<LockedAttempt[]> {
  const rows = await sql<LockedAttemptRow>(
    db,
    `
    WITH v AS MATERIALIZED (SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS v(id, lease_token))
    SELECT r.id::text AS id, r.lease_token::text AS lease_token, r.namespace, r.queue, r.job, r.attempt, r.max_attempts, r.started_at,
      r.worker_id, r.trace_context
    FROM v
    JOIN stackshift.runs r ON r.id = v.id
    WHERE ${runsOfBatch('v')} AND r.lease_token = v.lease_token AND r.lease_expires_at > now()
    ORDER BY r.id
    FOR UPDATE OF r
    `,
    [params.leases.map((l) => l.runId), params.leases.map((l) => l.leaseToken)],
  )
  return rows.map(toLockedAttempt)
}

/**
 * Locks up to `limit` runs whose lease has expired. SKIP LOCKED: several
 * servers reap at once without waiting for each other, and a run that a
 * worker is writing about right now is left for the next pass.
 */
export async function runLockExpiredLeases(db: Executor, params: { limit: number }): Promise<LockedAttempt[]> {
  const rows = await sql<LockedAttemptRow>(
    db,
    `
    SELECT id::text AS id, lease_token::text AS lease_token, namespace, queue, job, attempt, max_attempts, started_at, worker_id,
      trace_context
    FROM stackshift.runs
    WHERE status = 'running' AND lease_expires_at <= now()
    LIMIT $1
    FOR UPDATE SKIP LOCKED
    `,
    [params.limit],
  )
  return rows.map(toLockedAttempt)
}

/** The decided next state of a run whose attempt failed. */
export interface AttemptEnd {
  runId: string
  /** 'queued' retries now, 'scheduled' after `delayMs`, 'failed' ends the run. */
  status: 'queued' | 'scheduled' | 'failed'
  delayMs: number
  error: ErrorInfo
  /**
   * Keep the lease token on the row when the worker itself reported the end,
   * so a repeat of that report is recognised. Otherwise (the lease expired)
   * the token is cleared: a late report from that worker must not look like
   * a repeat.
   */
  isReportedByWorker: boolean
}

/**
 * Applies decided attempt endings to runs locked by this transaction. A run
 * that ends FAILED releases its idempotency key. Returns when each retry is due.
 */
export async function runEndAttempts(db: Executor, params: { ends: readonly AttemptEnd[] }): Promise<Map<string, Date>> {
  const { ends } = params
  const rows = await sql<{ id: string; available_at: Date }>(
    db,
    `
    WITH v AS MATERIALIZED (
      SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::boolean[]) AS v(id, status, delay_ms, error, keep_token)
    )
    UPDATE stackshift.runs AS r
    SET status = v.status::stackshift.run_status,
        available_at = CASE WHEN v.status = 'failed' THEN r.available_at ELSE now() + v.delay_ms * interval '1 millisecond' END,
        finished_at = CASE WHEN v.status = 'failed' THEN now() END,
        idempotency_key = CASE WHEN v.status = 'failed' THEN NULL ELSE r.idempotency_key END,
        lease_expires_at = NULL,
        is_resumed = true,
        lease_token = CASE WHEN v.keep_token THEN r.lease_token END,
        error = v.error::jsonb
    FROM v
    WHERE ${runsOfBatch('v')} AND r.id = v.id AND r.lease_expires_at IS NOT NULL
    RETURNING r.id::text AS id, r.available_at
    `,
    [
      ends.map((e) => e.runId),
      ends.map((e) => e.status),
      ends.map((e) => e.delayMs),
      ends.map((e) => JSON.stringify(e.error)),
      ends.map((e) => e.isReportedByWorker),
    ],
  )
  return new Map(rows.map((row) => [row.id, row.available_at]))
}

/**
 * Hands leased runs back: QUEUED again at their old place in line, and the
 * attempt does not count (the worker stopped, the run did not fail). The token
 * is cleared, so no later write of that attempt can pass for a repeat.
 */
export async function runRelease(
  db: Executor,
  params: { leases: readonly LeaseRef[] },
): Promise<Array<LeaseRow & { namespace: string; queue: string }>> {
  const rows = await sql<LeaseRow & { namespace: string; queue: string }>(
    db,
    `
    WITH v AS MATERIALIZED (SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS v(id, lease_token))
    UPDATE stackshift.runs AS r
    SET status = 'queued', attempt = r.attempt - 1, lease_expires_at = NULL, lease_token = NULL, is_resumed = true
    FROM v
    WHERE ${runsOfBatch('v')} AND r.id = v.id AND r.lease_token = v.lease_token AND r.lease_expires_at > now()
    RETURNING r.id::text AS id, v.lease_token::text AS lease_token, r.namespace, r.queue
    `,
    [params.leases.map((l) => l.runId), params.leases.map((l) => l.leaseToken)],
  )
  return rows
}

interface RunRow {
  id: string
  namespace: string
  queue: string
  job: string
  status: StoredRunStatus
  payload_json: string
  result_json: string | null
  error: ErrorInfo | null
  attempt: number
  max_attempts: number
  priority: number
  created_at: Date
  available_at: Date
  started_at: Date | null
  finished_at: Date | null
  idempotency_key: string | null
  trace_context: TraceContext | null
}

/** One run, or undefined when the namespace has no run with that id. */
const runColumns = `id::text AS id, namespace, queue, job, status, payload::text AS payload_json, result::text AS result_json, error,
  attempt, max_attempts, priority, created_at, available_at, started_at, finished_at, idempotency_key, trace_context`

function toRunRecord(row: RunRow): RunRecord {
  return {
    id: row.id,
    namespace: row.namespace,
    queue: row.queue,
    job: row.job,
    status: row.status,
    payloadJson: row.payload_json,
    resultJson: row.result_json ?? undefined,
    error: row.error ?? undefined,
    attempts: row.attempt,
    maxAttempts: row.max_attempts,
    priority: row.priority,
    createdAt: row.created_at,
    availableAt: row.available_at,
    startedAt: row.started_at ?? undefined,
    finishedAt: row.finished_at ?? undefined,
    idempotencyKey: row.idempotency_key ?? undefined,
    traceContext: row.trace_context ?? undefined,
  }
}

export async function runGet(db: Executor, params: { namespace: string; runId: string }): Promise<RunRecord | undefined> {
  const rows = await sql<RunRow>(db, `SELECT ${runColumns} FROM stackshift.runs WHERE id = $1 AND namespace = $2`, [
    params.runId,
    params.namespace,
  ])
  return rows[0] && toRunRecord(rows[0])
}

/**
 * A page of runs, newest first (ids are time-ordered, so the primary key
 * gives the order). Unset filters match everything.
 */
export async function runList(db: Executor, filter: RunFilter): Promise<RunRecord[]> {
  const statuses = filter.status === 'queued' ? ['queued', 'scheduled'] : filter.status ? [filter.status] : null
  const rows = await sql<RunRow>(
    db,
    `
    SELECT ${runColumns} FROM stackshift.runs
    WHERE namespace = $1
      AND ($2::text IS NULL OR queue = $2)
      AND ($3::text IS NULL OR job = $3)
      AND ($4::stackshift.run_status[] IS NULL OR status = ANY($4::stackshift.run_status[]))
      AND ($5::timestamptz IS NULL OR created_at >= $5)
      AND ($6::timestamptz IS NULL OR created_at < $6)
      AND ($7::uuid IS NULL OR id < $7::uuid)
    ORDER BY id DESC
    LIMIT $8
    `,
    [
      filter.namespace,
      filter.queue ?? null,
      filter.job ?? null,
      statuses,
      filter.createdAfter ?? null,
      filter.createdBefore ?? null,
      filter.afterId ?? null,
      filter.limit,
    ],
  )
  return rows.map(toRunRecord)
}

/**
 * Locks the run of a held lease until commit, for a State Store operation
 * made inside it: operations of one run (and a retransmitted one) run one at
 * a time, and the lease cannot expire or end meanwhile. Returns the attempt,
 * or undefined when the lease is not held.
 */
export async function runLockHeldLease(db: Executor, params: LeaseRef): Promise<number | undefined> {
  const rows = await sql<{ attempt: number }>(
    db,
    `SELECT attempt FROM stackshift.runs WHERE id = $1 AND lease_token = $2 AND lease_expires_at > now() FOR UPDATE`,
    [params.runId, params.leaseToken],
  )
  return rows[0]?.attempt
}

/** Locks a run for cancelling; returns its stored status, or undefined if there is no such run. */
export async function runLockForCancel(db: Executor, params: { namespace: string; runId: string }): Promise<StoredRunStatus | undefined> {
  const rows = await sql<{ status: StoredRunStatus }>(
    db,
    `SELECT status FROM stackshift.runs WHERE id = $1 AND namespace = $2 FOR UPDATE`,
    [params.runId, params.namespace],
  )
  return rows[0]?.status
}

/**
 * Ends a locked, unfinished run as CANCELLED: its lease ends (every later
 * write of the attempt is refused), its idempotency key is released, and a
 * pending sleep or wait ends with it. A running run's worker is told on the
 * cancelled channel.
 */
export async function runCancel(db: Executor, params: { runId: string; error: ErrorInfo; isRunning: boolean }): Promise<RunRecord> {
  const rows = await sql<RunRow>(
    db,
    `
    WITH cancelled AS (
      UPDATE stackshift.runs
      SET status = 'cancelled', finished_at = now(), lease_expires_at = NULL, idempotency_key = NULL, error = $2::jsonb
      WHERE id = $1
      RETURNING *
    ),
    ended_steps AS (
      UPDATE stackshift.steps SET status = 'failed', finished_at = now(), error = $2::jsonb
      WHERE run_id = $1 AND status = 'waiting'
    ),
    ended_wait AS (DELETE FROM stackshift.waits WHERE run_id = $1),
    told AS (SELECT pg_notify($4, $1::text) WHERE $3)
    SELECT ${runColumns} FROM cancelled, (SELECT count(*) FROM told) AS t
    `,
    [params.runId, JSON.stringify(params.error), params.isRunning, runCancelledChannel],
  )
  return toRunRecord(rows[0]!)
}

/**
 * Marks a run as waited for, so the trigger notifies when it finishes. Writes
 * only while the flag is unset and the run unfinished.
 */
export async function runMarkWaitedFor(db: Executor, params: { namespace: string; runId: string }): Promise<void> {
  await sql(
    db,
    `UPDATE stackshift.runs SET has_waiter = true
     WHERE id = $1 AND namespace = $2 AND NOT has_waiter AND status NOT IN ('completed', 'failed', 'cancelled')`,
    [params.runId, params.namespace],
  )
}

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

/** Sends a ready notification outside of an insert (after promotions, retries, releases). */
export async function runNotifyReady(db: Executor, params: { notice: string }): Promise<void> {
  await sql(db, 'SELECT pg_notify($1, $2)', [readyChannel, params.notice])
}

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
