import type { ErrorInfo, Fenced, LeaseRef, TraceContext } from '../../core/run.js'
import { type Executor, sql } from '../database.js'
import { runsOfBatch } from './run-batch.js'

/*
 * Ending an attempt that did not complete the run (a failure the worker
 * reported, or a lease that expired): lock the runs, decide (in
 * operations/attempt-endings.ts), then write the runs' next state and the
 * attempts' history in the same transaction.
 */

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
export async function runLockHeldLeases(db: Executor, params: { leases: ReadonlyArray<Fenced<LeaseRef>> }): Promise<LockedAttempt[]> {
  const rows = await sql<LockedAttemptRow>(
    db,
    `
    WITH v AS MATERIALIZED (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS v(id, lease_token, namespace))
    SELECT r.id::text AS id, r.lease_token::text AS lease_token, r.namespace, r.queue, r.job, r.attempt, r.max_attempts, r.started_at,
      r.worker_id, r.trace_context
    FROM v
    JOIN stackshift.runs r ON r.id = v.id
    WHERE ${runsOfBatch('v')} AND r.lease_token = v.lease_token AND r.lease_expires_at > now()
      AND (v.namespace = '*' OR r.namespace = v.namespace)
    ORDER BY r.id
    FOR UPDATE OF r
    `,
    [params.leases.map((l) => l.runId), params.leases.map((l) => l.leaseToken), params.leases.map((l) => l.namespace)],
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

/** An attempt that ended without completing the run. */
export interface EndedAttempt {
  runId: string
  attempt: number
  outcome: 'failed' | 'lease_expired' | 'cancelled'
  startedAt: Date | undefined
  workerId: string | undefined
  error: ErrorInfo | undefined
}

/** Appends ended attempts to the runs' history. */
export async function attemptRecordMany(db: Executor, params: { attempts: readonly EndedAttempt[] }): Promise<void> {
  const { attempts } = params
  await sql(
    db,
    `
    INSERT INTO stackshift.attempts (run_id, attempt, outcome, started_at, finished_at, worker_id, error)
    SELECT v.run_id, v.attempt, v.outcome::stackshift.attempt_outcome, v.started_at, now(), v.worker_id, v.error::jsonb
    FROM unnest($1::uuid[], $2::integer[], $3::text[], $4::timestamptz[], $5::text[], $6::text[])
      AS v(run_id, attempt, outcome, started_at, worker_id, error)
    ON CONFLICT (run_id, attempt) DO UPDATE
      SET outcome = excluded.outcome, started_at = excluded.started_at, finished_at = excluded.finished_at,
          worker_id = excluded.worker_id, error = excluded.error
    `,
    [
      attempts.map((a) => a.runId),
      attempts.map((a) => a.attempt),
      attempts.map((a) => a.outcome),
      attempts.map((a) => a.startedAt ?? null),
      attempts.map((a) => a.workerId ?? null),
      attempts.map((a) => (a.error ? JSON.stringify(a.error) : null)),
    ],
  )
}
