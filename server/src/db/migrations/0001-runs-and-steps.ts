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
 * The claim itself is the stored function claim_runs, installed from
 * db/functions/claim-runs.ts by migration 0007.
 */
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
    DROP FUNCTION IF EXISTS stackshift.claim_runs(text, text[], text[], integer, bigint, text);
    DROP TYPE stackshift.attempt_outcome;
    DROP TYPE stackshift.step_status;
    DROP TYPE stackshift.run_status;
  `)
}
