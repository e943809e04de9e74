import type { Knex } from 'knex'

/**
 * Sleeps, event waits and events.
 *
 * - A sleep or wait is a step row of its kind with status 'waiting' and its
 *   wake_at; the run is 'waiting' with available_at = wake_at, so the timer
 *   that promotes scheduled runs also ends sleeps and times out waits.
 * - An event wait also has a row in waits, found by event name when an event
 *   arrives. Waits and event sends on one (namespace, event name) serialize on
 *   a transaction-level advisory lock: a wait registered while an event is
 *   being sent either sees the committed event or is seen by the send, never
 *   neither and never both.
 * - Events are kept for lookback and for idempotency by id; retention deletes
 *   them with finished runs.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TYPE stackshift.step_kind AS ENUM ('run', 'sleep', 'wait', 'send');
    ALTER TYPE stackshift.step_status ADD VALUE 'waiting';

    ALTER TABLE stackshift.steps
      ADD COLUMN kind stackshift.step_kind NOT NULL DEFAULT 'run',
      ADD COLUMN wake_at timestamptz,
      ALTER COLUMN finished_at DROP NOT NULL;

    CREATE TABLE stackshift.events (
      namespace text NOT NULL,
      id text NOT NULL,
      name text NOT NULL,
      received_at timestamptz NOT NULL,
      data jsonb NOT NULL,
      PRIMARY KEY (namespace, id)
    );
    -- Lookback: the events of a name received since an instant.
    CREATE INDEX events_by_name ON stackshift.events (namespace, name, received_at);
    -- Retention.
    CREATE INDEX events_received ON stackshift.events (received_at);

    CREATE TABLE stackshift.waits (
      run_id uuid PRIMARY KEY,
      namespace text NOT NULL,
      event_name text NOT NULL,
      step_id text NOT NULL,
      match jsonb NOT NULL
    );
    CREATE INDEX waits_by_event ON stackshift.waits (namespace, event_name);
  `)
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TABLE stackshift.waits;
    DROP TABLE stackshift.events;
    DELETE FROM stackshift.steps WHERE kind <> 'run' OR finished_at IS NULL;
    ALTER TABLE stackshift.steps DROP COLUMN kind, DROP COLUMN wake_at, ALTER COLUMN finished_at SET NOT NULL;
    DROP TYPE stackshift.step_kind;
  `)
}
