import type { Knex } from 'knex'

/**
 * Runs, steps and attempt history.
 *
 * The hot path (enqueue, claim, complete) must stay fast with millions of
 * finished runs kept for history, so:
 * - Ready runs have their own status ('queued'); runs waiting for a delay or a
 *   backoff are 'scheduled' until a timer promotes them. The claim index holds
 *   only ready runs, in claim order, so a claim reads the first entries and
 *   never scans past finished or future runs.
 * - Lease columns (lease_token, lease_expires_at) are in no index, so a
 *   heartbeat changes no indexed column and can be a HOT update; fillfactor
 *   leaves room on each page for those updates.
 * - Run ids are UUIDv7 (time-ordered): inserts append to the primary key, and
 *   retention deletes an id range without an index on finished_at.
 * - No foreign keys from steps/attempts to runs: a foreign key would take a
 *   share lock on the run row for every step insert. Retention deletes the
 *   three tables together.
 */
/** claim_runs as this migration creates it (0005 replaces it, and restores it on the way down). */
export const claimRunsFunction = `
    -- Leases up to p_limit ready runs of the given queues and jobs, in claim
    -- order, with the memo of their completed steps. One ordered scan of
    -- runs_ready per queue (LATERAL); SKIP LOCKED lets concurrent claimers take
    -- disjoint runs. The planner cannot see which queue a LATERAL row names, and
    -- its statistics can make a job look absent, so it may think a whole-table
    -- scan is cheaper than reading the head of the index; for this statement it
    -- never is, so the function forbids it. Ids are matched with = ANY(ARRAY())
    -- so the update probes the primary key whatever the row estimates.
    CREATE FUNCTION stackshift.claim_runs(
      p_namespace text, p_queues text[], p_jobs text[], p_limit integer, p_lease_ms bigint, p_worker_id text
    ) RETURNS TABLE (
      run_id text, run_queue text, run_job text, payload_json text, run_attempt integer, run_max_attempts integer,
      run_lease_token text, lease_expires_ms float8, available_ms float8, memo json
    )
    LANGUAGE plpgsql VOLATILE
    SET enable_seqscan = off
    SET enable_bitmapscan = off
    AS $$
    DECLARE
      -- One token for the runs of this claim: fencing checks (run id, token)
      -- pairs, so it is still unique to each attempt of each run.
      v_lease_token uuid := gen_random_uuid();
    BEGIN
      -- PL/pgSQL keeps this statement's plan for the session; a SQL function
      -- with SET clauses would parse and plan it on every call. The update
      -- returns rows in primary-key order, so they are sorted back into claim
      -- order: workers start them in the order received.
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
          r.is_resumed
      )
      SELECT c.id::text, c.queue, c.job, c.payload::text, c.attempt, c.max_attempts, v_lease_token::text,
        (extract(epoch FROM c.lease_expires_at) * 1000)::float8,
        (extract(epoch FROM c.available_at) * 1000)::float8,
        CASE WHEN c.is_resumed THEN
          (SELECT json_agg(json_build_array(s.step_id, s.result::text))
           FROM stackshift.steps AS s WHERE s.run_id = c.id AND s.status = 'completed')
        END
      FROM claimed AS c
      ORDER BY c.priority DESC, c.available_at, c.id;
    END
    $$;
`

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TYPE stackshift.run_status AS ENUM
      ('queued', 'scheduled', 'running', 'waiting', 'completed', 'failed', 'cancelled');
    CREATE TYPE stackshift.step_status AS ENUM ('completed', 'failed');
    CREATE TYPE stackshift.attempt_outcome AS ENUM ('failed', 'lease_expired', 'cancelled');

    CREATE TABLE stackshift.runs (
      id uuid PRIMARY KEY,
      lease_token uuid,
      available_at timestamptz NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      started_at timestamptz,
      finished_at timestamptz,
      lease_expires_at timestamptz,
      idempotency_expires_at timestamptz,
      attempt integer NOT NULL DEFAULT 0,
      max_attempts integer NOT NULL,
      status stackshift.run_status NOT NULL,
      priority smallint NOT NULL DEFAULT 0,
      has_waiter boolean NOT NULL DEFAULT false,
      -- Set when the run goes back to the queue after executing (a retry, a
      -- hand-back): only then can it have steps to replay, so only then does
      -- a claim look them up.
      is_resumed boolean NOT NULL DEFAULT false,
      namespace text NOT NULL,
      queue text NOT NULL,
      job text NOT NULL,
      worker_id text,
      idempotency_key text,
      payload jsonb NOT NULL,
      result jsonb,
      error jsonb
    ) WITH (fillfactor = 85);

    -- Claim order among ready runs: priority, then the time the run became ready.
    CREATE INDEX runs_ready ON stackshift.runs (namespace, queue, priority DESC, available_at, id)
      WHERE status = 'queued';

    -- Timers: delayed runs, retry backoffs, sleeps and wait timeouts.
    CREATE INDEX runs_due ON stackshift.runs (available_at)
      WHERE status IN ('scheduled', 'waiting');

    -- Leased runs, for the lease reaper. Keyed on id, not on lease_expires_at,
    -- so heartbeats stay out of the index.
    CREATE INDEX runs_leased ON stackshift.runs (id) WHERE status = 'running';

    -- One live run per idempotency key. Finished runs release the key by
    -- setting it to NULL; expired keys are released lazily by the next enqueue.
    CREATE UNIQUE INDEX runs_idempotency ON stackshift.runs (namespace, idempotency_key)
      WHERE idempotency_key IS NOT NULL;

    CREATE TABLE stackshift.steps (
      run_id uuid NOT NULL,
      step_id text NOT NULL,
      status stackshift.step_status NOT NULL,
      attempt integer NOT NULL,
      started_at timestamptz NOT NULL,
      finished_at timestamptz NOT NULL,
      result jsonb,
      error jsonb,
      PRIMARY KEY (run_id, step_id)
    );

    -- Attempts that did not complete. The current or final attempt's times are
    -- on the run row, so the happy path writes nothing here.
    CREATE TABLE stackshift.attempts (
      run_id uuid NOT NULL,
      attempt integer NOT NULL,
      outcome stackshift.attempt_outcome NOT NULL,
      started_at timestamptz,
      finished_at timestamptz NOT NULL,
      worker_id text,
      error jsonb,
      PRIMARY KEY (run_id, attempt)
    );

    ${claimRunsFunction}

    -- WaitForRun marks the runs it waits for; only those notify when they
    -- finish, so unobserved runs pay nothing. Every path that ends a run goes
    -- through an UPDATE of status, so none can forget to notify.
    CREATE FUNCTION stackshift.notify_run_finished() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('stackshift_run_finished', NEW.id::text);
      RETURN NULL;
    END
    $$;
    CREATE TRIGGER runs_notify_finished
      AFTER UPDATE OF status ON stackshift.runs
      FOR EACH ROW
      WHEN (NEW.has_waiter AND NEW.status IN ('completed', 'failed', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status)
      EXECUTE FUNCTION stackshift.notify_run_finished();
  `)
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TABLE stackshift.attempts;
    DROP TABLE stackshift.steps;
    DROP TABLE stackshift.runs;
    DROP FUNCTION stackshift.notify_run_finished();
    DROP FUNCTION stackshift.claim_runs(text, text[], text[], integer, bigint, text);
    DROP TYPE stackshift.attempt_outcome;
    DROP TYPE stackshift.step_status;
    DROP TYPE stackshift.run_status;
  `)
}
