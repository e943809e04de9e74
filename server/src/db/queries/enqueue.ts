import type { NewRun } from '../../core/run.js'
import { readyChannel } from '../channels.js'
import { type Executor, sql } from '../database.js'

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
  params: {
    namespace: string
    runs: readonly NewRun[]
    /** Per run, its key value under flow control (operations/flow-policies.ts), or undefined. */
    concurrencyKeys: ReadonlyArray<string | undefined>
    leases: ReadonlyArray<InsertLease | undefined>
    readyNotice: string
  },
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
                  $9::smallint[], $10::integer[], $14::bigint[], $15::text[], $16::text[], $17::integer[], $18::text[])
        AS v(id, queue, job, payload, idempotency_key, idempotency_ttl_ms, delay_ms, run_at, priority, max_attempts, lease_ms, worker_id,
             trace_context, payload_bytes, concurrency_key)
    ),
    inserted AS (
      INSERT INTO stackshift.runs
        (id, namespace, queue, job, status, priority, attempt, max_attempts, available_at, idempotency_key, idempotency_expires_at,
         lease_token, lease_expires_at, started_at, worker_id, payload, payload_bytes, trace_context, concurrency_key)
      SELECT id, $11, queue, job,
        (CASE WHEN lease_ms > 0 THEN 'running' WHEN available_at > now() THEN 'scheduled' ELSE 'queued' END)::stackshift.run_status,
        priority, CASE WHEN lease_ms > 0 THEN 1 ELSE 0 END, max_attempts, available_at, idempotency_key,
        CASE WHEN idempotency_key IS NOT NULL THEN now() + idempotency_ttl_ms * interval '1 millisecond' END,
        CASE WHEN lease_ms > 0 THEN gen_random_uuid() END,
        CASE WHEN lease_ms > 0 THEN now() + lease_ms * interval '1 millisecond' END,
        CASE WHEN lease_ms > 0 THEN now() END,
        worker_id,
        payload::jsonb,
        payload_bytes,
        trace_context::jsonb,
        concurrency_key
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
      runs.map((r) => r.payloadBytes),
      params.concurrencyKeys.map((key) => key ?? null),
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

/**
 * Stores runs of debounced jobs, at most one per job and debounce key: a run
 * whose key has a pending run (scheduled, before its first attempt:
 * runs_debounce) updates that run instead, with its payload, key value and
 * trace context, and a start `periodMs` from now (or its own later start);
 * otherwise it is inserted, scheduled for then. Returns the id of the run
 * stored or updated, per entry in order.
 */
export async function runDebounceMany(
  db: Executor,
  params: {
    namespace: string
    runs: ReadonlyArray<{
      run: NewRun
      placement: { concurrencyKey: string | undefined; debounce: { key: string; periodMs: number } | undefined }
    }>
  },
): Promise<string[]> {
  const entries = params.runs
  const rows = await sql<{ id: string; job: string; debounce_key: string }>(
    db,
    `
    WITH input AS (
      SELECT v.*,
        greatest(
          CASE WHEN v.run_at IS NOT NULL THEN v.run_at ELSE now() + v.delay_ms * interval '1 millisecond' END,
          now() + v.debounce_ms * interval '1 millisecond') AS available_at
      FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[], $7::smallint[], $8::integer[],
                  $9::text[], $10::integer[], $11::text[], $12::text[], $13::bigint[])
        WITH ORDINALITY AS v(id, queue, job, payload, delay_ms, run_at, priority, max_attempts, trace_context, payload_bytes,
             concurrency_key, debounce_key, debounce_ms, ord)
    )
    INSERT INTO stackshift.runs AS r
      (id, namespace, queue, job, status, priority, attempt, max_attempts, available_at, payload, payload_bytes, trace_context,
       concurrency_key, debounce_key)
    SELECT id, $14, queue, job, 'scheduled', priority, 0, max_attempts, available_at, payload::jsonb, payload_bytes, trace_context::jsonb,
      concurrency_key, debounce_key
    FROM input ORDER BY ord
    ON CONFLICT (namespace, job, debounce_key) WHERE status = 'scheduled' AND debounce_key IS NOT NULL AND attempt = 0
    DO UPDATE SET payload = EXCLUDED.payload, payload_bytes = EXCLUDED.payload_bytes, trace_context = EXCLUDED.trace_context,
      concurrency_key = EXCLUDED.concurrency_key, available_at = EXCLUDED.available_at
    RETURNING r.id::text AS id, r.job, r.debounce_key
    `,
    [
      entries.map((e) => e.run.id),
      entries.map((e) => e.run.queue),
      entries.map((e) => e.run.job),
      entries.map((e) => e.run.payloadJson),
      entries.map((e) => e.run.delayMs),
      entries.map((e) => e.run.runAt ?? null),
      entries.map((e) => e.run.priority),
      entries.map((e) => e.run.maxAttempts),
      entries.map((e) => (e.run.traceContext ? JSON.stringify(e.run.traceContext) : null)),
      entries.map((e) => e.run.payloadBytes),
      entries.map((e) => e.placement.concurrencyKey ?? null),
      entries.map((e) => e.placement.debounce!.key),
      entries.map((e) => e.placement.debounce!.periodMs),
      params.namespace,
    ],
  )
  // One row per entry (the caller keeps one entry per job and key); matched back by job and key.
  const byKey = new Map(rows.map((row) => [`${row.job}\u0000${row.debounce_key}`, row.id]))
  return entries.map((e) => byKey.get(`${e.run.job}\u0000${e.placement.debounce!.key}`)!)
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
