import type { Knex } from 'knex'
import { claimRunsFunction } from '../functions/claim-runs.js'

/**
 * Schedules (operations/schedules.ts, maintenance/schedule-firing.ts).
 *
 * - schedules: one row per schedule, its definition and where it is:
 *   `next_fire_at` is the first tick not yet handled (null once the
 *   expression has no more), `last_tick_at` the latest handled, and
 *   `buffered_at` a tick waiting for an unfinished run (overlap buffer_one).
 *   Between ticks a schedule is this row and nothing else: no timer, no
 *   worker. schedules_due holds the schedules that are not paused by their
 *   next tick, so a pass reads the due ones from its head and a server learns
 *   when to wake from its first entry; schedules_buffered the few with a
 *   waiting tick.
 * - runs.schedule_id and runs.scheduled_at name the schedule and the tick of
 *   a run it fired; nullable without a default, so adding them rewrites
 *   nothing and other runs store nulls, which cost no space. runs_by_schedule
 *   is unique: one run per tick of a schedule, whichever server fires it and
 *   however often a backfill is repeated, even once the run's idempotency key
 *   was released (a failed run's). It also lists a schedule's last runs and
 *   serves ListRuns' schedule filter. runs_unfinished_by_schedule answers the
 *   overlap question (is a run of this schedule queued, running or waiting?)
 *   without reading the schedule's finished history; both indexes are partial,
 *   so runs not fired by a schedule take no entry in either.
 * - claim_runs returns the schedule and tick with each run, for the handler:
 *   its result columns change, so the old function is dropped first.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE stackshift.schedules (
      namespace text NOT NULL,
      id text NOT NULL,
      cron text NOT NULL,
      timezone text NOT NULL,
      queue text NOT NULL,
      job text NOT NULL,
      payload jsonb NOT NULL,
      payload_bytes integer NOT NULL,
      overlap text NOT NULL,
      catchup_window_ms bigint NOT NULL,
      is_paused boolean NOT NULL DEFAULT false,
      next_fire_at timestamptz,
      last_tick_at timestamptz,
      buffered_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (namespace, id)
    );
    CREATE INDEX schedules_due ON stackshift.schedules (next_fire_at) WHERE NOT is_paused;
    CREATE INDEX schedules_buffered ON stackshift.schedules (namespace, id) WHERE buffered_at IS NOT NULL AND NOT is_paused;

    ALTER TABLE stackshift.runs ADD COLUMN schedule_id text, ADD COLUMN scheduled_at timestamptz;
    CREATE UNIQUE INDEX runs_by_schedule ON stackshift.runs (namespace, schedule_id, scheduled_at) WHERE schedule_id IS NOT NULL;
    CREATE INDEX runs_unfinished_by_schedule ON stackshift.runs (namespace, schedule_id)
      WHERE schedule_id IS NOT NULL AND finished_at IS NULL;

    DROP FUNCTION IF EXISTS stackshift.claim_runs(text, text[], text[], integer, bigint, text, bigint);
    ${claimRunsFunction}
  `)
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP INDEX stackshift.runs_unfinished_by_schedule, stackshift.runs_by_schedule;
    ALTER TABLE stackshift.runs DROP COLUMN scheduled_at, DROP COLUMN schedule_id;
    DROP TABLE stackshift.schedules;
  `)
}
