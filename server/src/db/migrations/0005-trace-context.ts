import type { Knex } from 'knex'
import { claimRunsFunction as claimRunsWithoutTraceContext } from './0001-runs-and-steps.js'

/** claim_runs as this migration creates it (0006 replaces it, and restores it on the way down). */
export const claimRunsFunction = `
    -- As in 0001, with the trace context returned.
    CREATE FUNCTION stackshift.claim_runs(
      p_namespace text, p_queues text[], p_jobs text[], p_limit integer, p_lease_ms bigint, p_worker_id text
    ) RETURNS TABLE (
      run_id text, run_queue text, run_job text, payload_json text, run_attempt integer, run_max_attempts integer,
      run_lease_token text, lease_expires_ms float8, available_ms float8, memo json, trace_context jsonb
    )
    LANGUAGE plpgsql VOLATILE
    SET enable_seqscan = off
    SET enable_bitmapscan = off
    AS $$
    DECLARE
      v_lease_token uuid := gen_random_uuid();
    BEGIN
      RETURN QUERY
      WITH claimed AS (
        UPDATE stackshift.runs AS r
        SET status = 'running', attempt = r.attempt + 1, lease_token = v_lease_token,
            lease_expires_at = now() + p_lease_ms * interval '1 millisecond', started_at = now(), worker_id = p_worker_id
        WHERE r.id = ANY(ARRAY(
          SELECT picked.id
          FROM unnest(p_queues) AS q(name)
          CROSS JOIN LATERAL (
            SELECT candidate.id FROM stackshift.runs AS candidate
            WHERE candidate.namespace = p_namespace AND candidate.queue = q.name AND candidate.status = 'queued'
              AND candidate.job = ANY(p_jobs)
            ORDER BY candidate.priority DESC, candidate.available_at, candidate.id
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED
          ) AS picked
          LIMIT p_limit
        ))
        RETURNING r.id, r.queue, r.job, r.payload, r.attempt, r.max_attempts, r.lease_expires_at, r.available_at, r.priority,
          r.is_resumed, r.trace_context
      )
      SELECT c.id::text, c.queue, c.job, c.payload::text, c.attempt, c.max_attempts, v_lease_token::text,
        (extract(epoch FROM c.lease_expires_at) * 1000)::float8,
        (extract(epoch FROM c.available_at) * 1000)::float8,
        CASE WHEN c.is_resumed THEN
          (SELECT json_agg(json_build_array(s.step_id, s.result::text))
           FROM stackshift.steps AS s WHERE s.run_id = c.id AND s.status = 'completed')
        END,
        c.trace_context
      FROM claimed AS c
      ORDER BY c.priority DESC, c.available_at, c.id;
    END
    $$;
`

/**
 * The enqueuer's trace context (W3C carrier), kept with the run so every
 * attempt continues the enqueuer's trace. NULL for runs enqueued without one:
 * an untraced run pays one null bit. claim_runs returns it with the task.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE stackshift.runs ADD COLUMN trace_context jsonb;

    DROP FUNCTION stackshift.claim_runs(text, text[], text[], integer, bigint, text);
    ${claimRunsFunction}
  `)
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP FUNCTION stackshift.claim_runs(text, text[], text[], integer, bigint, text);
    ${claimRunsWithoutTraceContext}
    ALTER TABLE stackshift.runs DROP COLUMN trace_context;
  `)
}
