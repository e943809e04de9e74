import type { Knex } from 'knex'
import { claimFlowRunsFunction } from '../functions/claim-flow-runs.js'
import { flowPoliciesChannel, readyChannel } from '../channels.js'

/**
 * Flow control: policies per job and per queue, enforced by the flow claim
 * (claim_flow_runs, installed from db/functions/claim-flow-runs.ts, where the
 * invariants are).
 *
 * - Policies are rows (job_policies, queue_policies) with a version that
 *   every change bumps; a change notifies `stackshift_flow_policies` so every
 *   server reloads them at once. The claim reads them itself, so a limit
 *   changed at run time holds from the next claim on.
 * - A run under flow control carries its key value (concurrency_key) from
 *   the enqueue; other runs have NULL there, which costs them nothing: the
 *   indexes below are partial on it, and the triggers' WHEN clauses skip them.
 *   runs_flow_ready is the flow claim's ready index (per queue, job and key,
 *   in claim order); runs_flow_running finds the runs holding a key's slots.
 * - Debounced runs carry debounce_key while pending: at most one pending run
 *   per job and key (runs_debounce), which an enqueue updates in place
 *   (ON CONFLICT). Pending means 'scheduled' before its first attempt: a
 *   retry's backoff is 'scheduled' too, with attempt > 0, and stays out.
 * - flow_keys lists the keys that may have ready runs; flow_cursors, where
 *   the last claim of each queue and job stopped in them (round robin).
 *   flow_key_ready adds a key when a run of it becomes ready, by any path,
 *   so none has to remember to.
 * - flow_rate_windows holds the last starts of each rate-limited key.
 * - A flow run leaving 'running' (completed, failed, retried, suspended,
 *   cancelled, handed back, reaped) frees a slot: flow_slot_freed sends a
 *   ready notice for its queue, so every server's workers claim again.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE stackshift.runs ADD COLUMN concurrency_key text, ADD COLUMN debounce_key text;

    CREATE INDEX runs_flow_ready ON stackshift.runs (namespace, queue, job, concurrency_key, priority DESC, available_at, id)
      WHERE status = 'queued' AND concurrency_key IS NOT NULL;
    CREATE INDEX runs_flow_running ON stackshift.runs (namespace, job, concurrency_key)
      WHERE status = 'running' AND concurrency_key IS NOT NULL;
    CREATE UNIQUE INDEX runs_debounce ON stackshift.runs (namespace, job, debounce_key)
      WHERE status = 'scheduled' AND debounce_key IS NOT NULL AND attempt = 0;

    CREATE TABLE stackshift.job_policies (
      namespace text NOT NULL,
      job text NOT NULL,
      policies jsonb NOT NULL,
      version bigint NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (namespace, job)
    );
    CREATE TABLE stackshift.queue_policies (
      namespace text NOT NULL,
      queue text NOT NULL,
      concurrency integer NOT NULL,
      version bigint NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (namespace, queue)
    );
    CREATE TABLE stackshift.flow_keys (
      namespace text NOT NULL,
      queue text NOT NULL,
      job text NOT NULL,
      concurrency_key text NOT NULL,
      PRIMARY KEY (namespace, queue, job, concurrency_key)
    );
    CREATE TABLE stackshift.flow_cursors (
      namespace text NOT NULL,
      queue text NOT NULL,
      job text NOT NULL,
      last_key text NOT NULL,
      PRIMARY KEY (namespace, queue, job)
    );
    CREATE TABLE stackshift.flow_rate_windows (
      namespace text NOT NULL,
      job text NOT NULL,
      rate_key text NOT NULL,
      starts timestamptz[] NOT NULL,
      PRIMARY KEY (namespace, job, rate_key)
    );

    ${claimFlowRunsFunction}

    -- Takes the job's flow lock in share mode, so a claim forgetting this key
    -- (exclusive) either finished before, or sees this run after it commits.
    CREATE FUNCTION stackshift.flow_key_ready() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_advisory_xact_lock_shared(stackshift.flow_lock_key('job', NEW.namespace, NEW.job));
      INSERT INTO stackshift.flow_keys (namespace, queue, job, concurrency_key)
      VALUES (NEW.namespace, NEW.queue, NEW.job, NEW.concurrency_key)
      ON CONFLICT DO NOTHING;
      RETURN NULL;
    END
    $$;
    CREATE TRIGGER runs_flow_key_inserted
      AFTER INSERT ON stackshift.runs
      FOR EACH ROW
      WHEN (NEW.concurrency_key IS NOT NULL AND NEW.status = 'queued')
      EXECUTE FUNCTION stackshift.flow_key_ready();
    CREATE TRIGGER runs_flow_key_ready
      AFTER UPDATE OF status, concurrency_key ON stackshift.runs
      FOR EACH ROW
      WHEN (NEW.concurrency_key IS NOT NULL AND NEW.status = 'queued'
        AND (OLD.status <> 'queued' OR OLD.concurrency_key IS DISTINCT FROM NEW.concurrency_key))
      EXECUTE FUNCTION stackshift.flow_key_ready();

    -- A ready notice (db/channels.ts: ReadyNotice) from no server, so every server acts on it.
    CREATE FUNCTION stackshift.flow_slot_freed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      -- Built by concatenation: json_build_object cost a third of this trigger's time. PostgreSQL sends a
      -- transaction's equal notices once, so a batch of completions in one queue wakes each server once.
      PERFORM pg_notify('${readyChannel}',
        '{"origin":"database","namespace":' || to_json(NEW.namespace)::text || ',"queues":[' || to_json(NEW.queue)::text || ']}');
      RETURN NULL;
    END
    $$;
    CREATE TRIGGER runs_flow_slot_freed
      AFTER UPDATE OF status ON stackshift.runs
      FOR EACH ROW
      WHEN (OLD.status = 'running' AND NEW.status <> 'running' AND OLD.concurrency_key IS NOT NULL)
      EXECUTE FUNCTION stackshift.flow_slot_freed();

    CREATE FUNCTION stackshift.flow_policies_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('${flowPoliciesChannel}', NEW.namespace);
      RETURN NULL;
    END
    $$;
    CREATE TRIGGER job_policies_changed AFTER INSERT OR UPDATE ON stackshift.job_policies
      FOR EACH ROW EXECUTE FUNCTION stackshift.flow_policies_changed();
    CREATE TRIGGER queue_policies_changed AFTER INSERT OR UPDATE ON stackshift.queue_policies
      FOR EACH ROW EXECUTE FUNCTION stackshift.flow_policies_changed();
  `)
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TRIGGER runs_flow_slot_freed ON stackshift.runs;
    DROP TRIGGER runs_flow_key_ready ON stackshift.runs;
    DROP TRIGGER runs_flow_key_inserted ON stackshift.runs;
    DROP FUNCTION stackshift.flow_slot_freed();
    DROP FUNCTION stackshift.flow_key_ready();
    DROP FUNCTION stackshift.claim_flow_runs(text, text, text, integer, bigint, text, bigint);
    DROP FUNCTION stackshift.flow_lock_key(text, text, text);
    DROP TABLE stackshift.flow_rate_windows, stackshift.flow_cursors, stackshift.flow_keys, stackshift.queue_policies, stackshift.job_policies;
    DROP FUNCTION stackshift.flow_policies_changed();
    DROP INDEX stackshift.runs_debounce, stackshift.runs_flow_running, stackshift.runs_flow_ready;
    ALTER TABLE stackshift.runs DROP COLUMN debounce_key, DROP COLUMN concurrency_key;
  `)
}
