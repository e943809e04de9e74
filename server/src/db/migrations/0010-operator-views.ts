import type { Knex } from 'knex'

/**
 * What operators need to find and act on runs.
 *
 * - Reruns and replays name their source run (and a replay its step), so the
 *   console links both ways.
 * - ListRuns filters by queue, job and payload (containment, `@>`) through
 *   indexes of finished runs only: a claim and a completion change the
 *   status, which partial indexes name, so no update of a run is HOT and
 *   every index without a predicate would take an entry at the enqueue, the
 *   claim and the completion. These take one, at the finish. Unfinished
 *   runs are found through the partial indexes of each unfinished status
 *   (runs_ready, runs_leased, runs_due): as many as the backlog. ListRuns
 *   reads both and merges them (db/queries/run-filters.ts). The rare
 *   statuses `failed` and `cancelled` have partial indexes of their own.
 *   The payload index is GIN with jsonb_path_ops: it serves only `@>`, and
 *   is the smaller and faster of the two GIN operator classes.
 *   docs/performance.md has the query plans and timings on a million runs,
 *   and what the indexes cost.
 * - Queue statistics read the last hour's finished runs through
 *   runs_finished.
 * - Which runs an event resumed is read from the wait steps it completed
 *   (their result names the event), through a partial index of completed
 *   wait steps by event id: nothing more is written when a wait resumes.
 * - Servers report the workers connected to them (workers), every few
 *   seconds, so any server can list all of them.
 * - Bulk actions (bulk_actions) keep their selection and how far they got
 *   (`cursor`: the last run id handled, newest first), so any server can
 *   carry one on after a restart; `lease_expires_at` says which server works
 *   on it now.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE stackshift.runs
      ADD COLUMN origin text,
      ADD COLUMN source_run_id uuid,
      ADD COLUMN replayed_from_step_id text;

    CREATE INDEX runs_by_queue ON stackshift.runs (namespace, queue, id) WHERE finished_at IS NOT NULL;
    CREATE INDEX runs_by_job ON stackshift.runs (namespace, job, id) WHERE finished_at IS NOT NULL;
    CREATE INDEX runs_failed ON stackshift.runs (namespace, id) WHERE status = 'failed';
    CREATE INDEX runs_cancelled ON stackshift.runs (namespace, id) WHERE status = 'cancelled';
    CREATE INDEX runs_finished ON stackshift.runs (namespace, finished_at) WHERE finished_at IS NOT NULL;
    CREATE INDEX runs_by_source ON stackshift.runs (source_run_id) WHERE source_run_id IS NOT NULL;
    CREATE INDEX runs_payload ON stackshift.runs USING gin (payload jsonb_path_ops) WHERE finished_at IS NOT NULL;

    CREATE INDEX steps_event_deliveries ON stackshift.steps ((result ->> 'id'))
      WHERE kind = 'wait' AND status = 'completed';

    CREATE TABLE stackshift.workers (
      server_id text NOT NULL,
      stream_id text NOT NULL,
      namespace text NOT NULL,
      worker_id text NOT NULL,
      queues text[] NOT NULL,
      jobs text[] NOT NULL,
      free_slots integer NOT NULL,
      sdk text NOT NULL,
      connected_at timestamptz NOT NULL,
      last_seen_at timestamptz NOT NULL,
      PRIMARY KEY (server_id, stream_id)
    );
    CREATE INDEX workers_by_namespace ON stackshift.workers (namespace, last_seen_at);

    CREATE TABLE stackshift.bulk_actions (
      id uuid PRIMARY KEY,
      namespace text NOT NULL,
      kind text NOT NULL,
      selection jsonb NOT NULL,
      from_step_id text NOT NULL,
      status text NOT NULL,
      id_ceiling uuid NOT NULL,
      cursor uuid,
      handled bigint NOT NULL DEFAULT 0,
      skipped bigint NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      finished_at timestamptz,
      lease_expires_at timestamptz
    );
    CREATE INDEX bulk_actions_running ON stackshift.bulk_actions (lease_expires_at) WHERE status = 'running';
    CREATE INDEX bulk_actions_by_namespace ON stackshift.bulk_actions (namespace, created_at);
  `)
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TABLE stackshift.bulk_actions;
    DROP TABLE stackshift.workers;
    DROP INDEX stackshift.steps_event_deliveries;
    DROP INDEX stackshift.runs_payload, stackshift.runs_finished, stackshift.runs_by_source, stackshift.runs_cancelled, stackshift.runs_failed,
      stackshift.runs_by_job, stackshift.runs_by_queue;
    ALTER TABLE stackshift.runs DROP COLUMN replayed_from_step_id, DROP COLUMN source_run_id, DROP COLUMN origin;
  `)
}
