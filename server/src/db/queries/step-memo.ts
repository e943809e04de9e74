import { type ErrorInfo, type Fenced, type StepCompletion, type StepKind, stepKey } from '../../core/run.js'
import { type Executor, sql } from '../database.js'
import { runsOfBatch } from './run-batch.js'

/*
 * The step memo: results of completed steps, written under the run's lease
 * and handed back with the run on its next attempt (claim_runs reads them), so
 * a completed step never runs again.
 */

/**
 * Stores step results for held leases only: the lease check (token, status,
 * deadline on the database clock) and the insert are one statement. A step
 * completed while the reaper expires its lease in the same instant may still
 * be stored, which is harmless: the step did run, and the next attempt either
 * replays its result or runs it again and overwrites it. (Locking the run row
 * to close that window cost as much as updating it, on every step.)
 *
 * With `isRepeat` false this is a plain insert, and a step already stored
 * (a write repeated after a lost answer) fails the statement with a unique
 * violation; the caller then repeats the batch with `isRepeat` true, which
 * overwrites. Returns the steps stored, by stepKey(runId, stepId), with the
 * namespace and job of their run (for metrics: read from the run row the
 * lease check reads anyway).
 *
 * The steps stored are exactly the steps whose lease is held (`held`): each
 * is inserted, or overwritten with `isRepeat` (an update without a condition),
 * or the statement fails. So they are read from `held` rather than joined
 * back from the insert's RETURNING, which cost several times the insert (a
 * data-modifying WITH runs to completion whether or not the query reads it).
 */
export async function stepCompleteMany(
  db: Executor,
  params: { steps: ReadonlyArray<Fenced<StepCompletion>>; isRepeat: boolean },
): Promise<Map<string, { namespace: string; job: string }>> {
  const { steps } = params
  const rows = await sql<{ run_id: string; step_id: string; namespace: string; job: string }>(
    db,
    `
    WITH v AS MATERIALIZED (
      SELECT * FROM ROWS FROM (
        unnest(string_to_array($1, ',')::uuid[]),
        unnest(string_to_array($2, ',')::uuid[]),
        json_array_elements_text($3::json),
        json_array_elements($4::json),
        unnest(string_to_array($5, ',')::integer[]),
        unnest(string_to_array($6, ',')::stackshift.step_kind[]),
        unnest(string_to_array($7, ','))
      ) AS v(run_id, lease_token, step_id, result, duration_ms, kind, namespace)
    ),
    held AS (
      SELECT r.id AS run_id, r.attempt, r.namespace, r.job, v.step_id, v.kind, v.result, v.duration_ms
      FROM v
      JOIN stackshift.runs r ON r.id = v.run_id
      WHERE ${runsOfBatch('v', 'run_id')} AND r.lease_token = v.lease_token AND r.lease_expires_at > now()
        AND (v.namespace = '*' OR r.namespace = v.namespace)
    ),
    stored AS (
      INSERT INTO stackshift.steps AS s (run_id, step_id, kind, status, attempt, started_at, finished_at, result)
      SELECT run_id, step_id, kind, 'completed', attempt, now() - duration_ms * interval '1 millisecond', now(), (result -> 0)::jsonb
      FROM held
      ${
        params.isRepeat
          ? `ON CONFLICT (run_id, step_id) DO UPDATE
        SET kind = excluded.kind, status = 'completed', attempt = excluded.attempt, started_at = excluded.started_at,
            finished_at = excluded.finished_at, result = excluded.result, error = NULL`
          : ''
      }
    )
    SELECT run_id::text AS run_id, step_id, namespace, job FROM held
    `,
    // As text PostgreSQL splits itself (see runComplete): results as [result] or [].
    [
      steps.map((s) => s.runId).join(','),
      steps.map((s) => s.leaseToken).join(','),
      JSON.stringify(steps.map((s) => s.stepId)),
      `[${steps.map((s) => (s.resultJson === undefined ? '[]' : `[${s.resultJson}]`)).join(',')}]`,
      steps.map((s) => s.durationMs).join(','),
      steps.map((s) => s.kind).join(','),
      steps.map((s) => s.namespace).join(','),
    ],
  )
  return new Map(rows.map((row) => [stepKey(row.run_id, row.step_id), { namespace: row.namespace, job: row.job }]))
}

/**
 * Records the steps that threw, as part of ending their attempts. A step that
 * completed earlier stays completed: its result is memoized.
 */
export async function stepRecordFailures(
  db: Executor,
  params: { failures: ReadonlyArray<{ runId: string; stepId: string; attempt: number; durationMs: number; error: ErrorInfo }> },
): Promise<void> {
  const { failures } = params
  await sql(
    db,
    `
    INSERT INTO stackshift.steps AS s (run_id, step_id, status, attempt, started_at, finished_at, error)
    SELECT v.run_id, v.step_id, 'failed', v.attempt, now() - v.duration_ms * interval '1 millisecond', now(), v.error::jsonb
    FROM unnest($1::uuid[], $2::text[], $3::integer[], $4::integer[], $5::text[]) AS v(run_id, step_id, attempt, duration_ms, error)
    ON CONFLICT (run_id, step_id) DO UPDATE
      SET status = 'failed', attempt = excluded.attempt, started_at = excluded.started_at,
          finished_at = excluded.finished_at, error = excluded.error, result = NULL
      WHERE s.status <> 'completed'
    `,
    [
      failures.map((f) => f.runId),
      failures.map((f) => f.stepId),
      failures.map((f) => f.attempt),
      failures.map((f) => f.durationMs),
      failures.map((f) => JSON.stringify(f.error)),
    ],
  )
}

/** A step of the run, whatever its kind and status, with its result as JSON text ("null" without one); undefined if there is none. */
export async function stepFindResult(
  db: Executor,
  params: { runId: string; stepId: string },
): Promise<{ kind: StepKind; isCompleted: boolean; resultJson: string } | undefined> {
  const rows = await sql<{ kind: StepKind; is_completed: boolean; result_json: string }>(
    db,
    `SELECT kind::text AS kind, status = 'completed' AS is_completed, coalesce(result::text, 'null') AS result_json
     FROM stackshift.steps WHERE run_id = $1 AND step_id = $2`,
    [params.runId, params.stepId],
  )
  const row = rows[0]
  return row && { kind: row.kind, isCompleted: row.is_completed, resultJson: row.result_json }
}

/** Records a State Store operation made inside a run (see StateStore). */
export async function stepRecordState(
  db: Executor,
  params: { runId: string; stepId: string; attempt: number; resultJson: string },
): Promise<void> {
  await sql(
    db,
    `INSERT INTO stackshift.steps (run_id, step_id, kind, status, attempt, started_at, finished_at, result)
     VALUES ($1, $2, 'state', 'completed', $3, now(), now(), $4::jsonb)
     ON CONFLICT (run_id, step_id) DO UPDATE
       SET kind = 'state', status = 'completed', attempt = excluded.attempt, started_at = excluded.started_at,
           finished_at = excluded.finished_at, result = excluded.result, error = NULL`,
    [params.runId, params.stepId, params.attempt, params.resultJson],
  )
}
