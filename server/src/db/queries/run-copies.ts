import { concurrencyKeyMaxLength } from '../../core/flow-policy.js'
import type { RunOrigin } from '../../core/run.js'
import { readyChannel } from '../channels.js'
import { type Executor, sql } from '../database.js'

/** A run made from another by an operator: a rerun, or a replay that keeps some of the source's steps. */
export interface RunCopy {
  namespace: string
  sourceRunId: string
  id: string
  origin: Exclude<RunOrigin, 'enqueue'>
  /** The new payload (JSON text) and its size; undefined: the source's. */
  payload: { json: string; bytes: number } | undefined
  /** For a replay: the step it executes from, and the source's steps to keep in its memo. */
  replay: { fromStepId: string; keptStepIds: readonly string[] } | undefined
}

/**
 * Inserts the copy of a run, ready now: the source's job, queue, priority and
 * max attempts; no idempotency key (the source may still hold its key); a
 * fresh trace. A replay's kept steps are copied as the source recorded them,
 * with attempt 0 (no attempt of the copy ran them), and the copy is marked
 * resumed so that its claim hands them over as its memo. Under flow control
 * (`flow`), the copy keeps the source's key value, or reads it at `keyPath`
 * in its payload as an enqueue would (core/flow-policy.ts readKeyValue). One
 * notification wakes the workers when it commits. Returns false when the
 * source is gone.
 */
export async function runInsertCopy(
  db: Executor,
  copy: RunCopy,
  readyNotice: string,
  flow: { keyPath: string | undefined } | undefined,
): Promise<boolean> {
  const rows = await sql<{ id: string }>(
    db,
    `
    WITH inserted AS (
      INSERT INTO stackshift.runs
        (id, namespace, queue, job, status, priority, attempt, max_attempts, available_at, payload, payload_bytes, is_resumed,
         origin, source_run_id, replayed_from_step_id, concurrency_key)
      SELECT $3::uuid, namespace, queue, job, 'queued', priority, 0, max_attempts, now(),
        coalesce($4::jsonb, payload), CASE WHEN $4::text IS NULL THEN payload_bytes ELSE $5::integer END,
        cardinality($8::text[]) > 0, $6, id, $7,
        CASE WHEN $11::boolean THEN coalesce(concurrency_key, CASE
          WHEN jsonb_typeof(coalesce($4::jsonb, payload) #> $12::text[]) IN ('string', 'number', 'boolean')
            THEN left(coalesce($4::jsonb, payload) #>> $12::text[], ${concurrencyKeyMaxLength})
          ELSE '' END) END
      FROM stackshift.runs WHERE namespace = $1 AND id = $2::uuid
      RETURNING id
    ),
    kept AS (
      INSERT INTO stackshift.steps (run_id, step_id, kind, status, attempt, started_at, finished_at, result)
      SELECT inserted.id, s.step_id, s.kind, 'completed', 0, s.started_at, s.finished_at, s.result
      FROM inserted JOIN stackshift.steps AS s ON s.run_id = $2::uuid AND s.step_id = ANY($8::text[]) AND s.status = 'completed'
      RETURNING 1
    ),
    notified AS (
      SELECT pg_notify($9, $10) FROM inserted
    )
    SELECT inserted.id::text AS id, (SELECT count(*) FROM kept) AS kept, (SELECT count(*) FROM notified) AS notified FROM inserted
    `,
    [
      copy.namespace,
      copy.sourceRunId,
      copy.id,
      copy.payload?.json ?? null,
      copy.payload?.bytes ?? null,
      copy.origin,
      copy.replay?.fromStepId ?? null,
      copy.replay?.keptStepIds ?? [],
      readyChannel,
      readyNotice,
      flow !== undefined,
      flow?.keyPath?.split('.') ?? null,
    ],
  )
  return rows.length > 0
}
