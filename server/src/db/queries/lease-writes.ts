import { type Fenced, type LeaseRef, type StoredRunStatus, leaseKey } from '../../core/run.js'
import { type Executor, sql } from '../database.js'
import { runsOfBatch } from './run-batch.js'

/*
 * Every statement that writes about a leased run checks, in the statement
 * itself, that the lease is held: same lease token and a deadline still in the
 * future on the database clock (only running runs have a deadline: constraint
 * runs_lease_while_running; status is left out so the planner probes runs by
 * id), and that the run is in the namespace the writer may act in (`*`:
 * any; see Fenced). A write that matches no row therefore means the lease is
 * lost, or not the writer's; callers tell which with runFindLeaseOutcomes.
 */

/** The condition that keeps a batch item `v` to runs of its namespace (`*`: any). */
const isWritersNamespace = `(v.namespace = '*' OR r.namespace = v.namespace)`

/** A lease as returned by a statement: run id and the token that matched. */
interface LeaseRow {
  id: string
  lease_token: string
}

function leaseKeys(rows: readonly LeaseRow[]): Set<string> {
  return new Set(rows.map((row) => leaseKey(row.id, row.lease_token)))
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
  params: { completions: ReadonlyArray<Fenced<LeaseRef> & { resultJson: string | undefined }> },
): Promise<RunCount[]> {
  const items = params.completions
  const rows = await sql<RunCount>(
    db,
    `
    WITH v AS MATERIALIZED (
      SELECT * FROM ROWS FROM (
        unnest(string_to_array($1, ',')::uuid[]),
        unnest(string_to_array($2, ',')::uuid[]),
        json_array_elements($3::json),
        unnest(string_to_array($4, ','))
      ) AS v(id, lease_token, result, namespace)
    ),
    completed AS (
      UPDATE stackshift.runs AS r
      SET status = 'completed', result = (v.result -> 0)::jsonb, finished_at = now(), lease_expires_at = NULL
      FROM v
      WHERE ${runsOfBatch('v')} AND r.id = v.id AND r.lease_token = v.lease_token AND r.lease_expires_at > now()
        AND ${isWritersNamespace}
      RETURNING r.namespace, r.queue, r.job
    )
    SELECT namespace, queue, job, count(*)::integer AS count FROM completed GROUP BY namespace, queue, job
    `,
    [
      items.map((c) => c.runId).join(','),
      items.map((c) => c.leaseToken).join(','),
      `[${items.map((c) => (c.resultJson === undefined ? '[]' : `[${c.resultJson}]`)).join(',')}]`,
      items.map((c) => c.namespace).join(','),
    ],
  )
  return rows
}

/** A run's stored status and last lease token. */
export interface LeaseOutcome {
  namespace: string
  status: StoredRunStatus
  leaseToken: string | undefined
}

/**
 * Status and last lease token of runs, to tell a repeated write (its effect is
 * already stored under the same token) from a write of a lost lease.
 */
export async function runFindLeaseOutcomes(db: Executor, params: { runIds: readonly string[] }): Promise<Map<string, LeaseOutcome>> {
  const rows = await sql<{ id: string; namespace: string; status: StoredRunStatus; lease_token: string | null }>(
    db,
    `SELECT id::text AS id, namespace, status, lease_token::text AS lease_token FROM stackshift.runs WHERE id = ANY($1::uuid[])`,
    [params.runIds],
  )
  return new Map(rows.map((row) => [row.id, { namespace: row.namespace, status: row.status, leaseToken: row.lease_token ?? undefined }]))
}

/** Extends held leases to `leaseMs` from now. Returns the leases (leaseKey) extended. */
export async function runHeartbeat(
  db: Executor,
  params: { leases: ReadonlyArray<Fenced<LeaseRef>>; leaseMs: number },
): Promise<Set<string>> {
  const rows = await sql<LeaseRow>(
    db,
    `
    WITH v AS MATERIALIZED (SELECT * FROM unnest($2::uuid[], $3::uuid[], $4::text[]) AS v(id, lease_token, namespace))
    UPDATE stackshift.runs AS r
    SET lease_expires_at = now() + $1 * interval '1 millisecond'
    FROM v
    WHERE ${runsOfBatch('v')} AND r.id = v.id AND r.lease_token = v.lease_token AND r.lease_expires_at > now()
      AND ${isWritersNamespace}
    RETURNING r.id::text AS id, v.lease_token::text AS lease_token
    `,
    [params.leaseMs, params.leases.map((l) => l.runId), params.leases.map((l) => l.leaseToken), params.leases.map((l) => l.namespace)],
  )
  return leaseKeys(rows)
}

/**
 * Hands leased runs back: QUEUED again at their old place in line, and the
 * attempt does not count (the worker stopped, the run did not fail). The token
 * is cleared, so no later write of that attempt can pass for a repeat.
 */
export async function runRelease(
  db: Executor,
  params: { leases: ReadonlyArray<Fenced<LeaseRef>> },
): Promise<Array<LeaseRow & { namespace: string; queue: string }>> {
  const rows = await sql<LeaseRow & { namespace: string; queue: string }>(
    db,
    `
    WITH v AS MATERIALIZED (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS v(id, lease_token, namespace))
    UPDATE stackshift.runs AS r
    SET status = 'queued', attempt = r.attempt - 1, lease_expires_at = NULL, lease_token = NULL, is_resumed = true
    FROM v
    WHERE ${runsOfBatch('v')} AND r.id = v.id AND r.lease_token = v.lease_token AND r.lease_expires_at > now()
      AND ${isWritersNamespace}
    RETURNING r.id::text AS id, v.lease_token::text AS lease_token, r.namespace, r.queue
    `,
    [params.leases.map((l) => l.runId), params.leases.map((l) => l.leaseToken), params.leases.map((l) => l.namespace)],
  )
  return rows
}

/**
 * Locks the run of a held lease until commit, for a State Store operation
 * made inside it: operations of one run (and a retransmitted one) run one at
 * a time, and the lease cannot expire or end meanwhile. Returns the attempt,
 * or undefined when the lease is not held.
 */
export async function runLockHeldLease(db: Executor, params: Fenced<LeaseRef>): Promise<number | undefined> {
  const rows = await sql<{ attempt: number }>(
    db,
    `SELECT attempt FROM stackshift.runs
     WHERE id = $1 AND lease_token = $2 AND lease_expires_at > now() AND ($3 = '*' OR namespace = $3)
     FOR UPDATE`,
    [params.runId, params.leaseToken, params.namespace],
  )
  return rows[0]?.attempt
}
