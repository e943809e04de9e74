import type { Knex } from 'knex'

/**
 * The enqueuer's trace context (W3C carrier), kept with the run so every
 * attempt continues the enqueuer's trace. NULL for runs enqueued without one:
 * an untraced run pays one null bit. claim_runs returns it with the task.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`ALTER TABLE stackshift.runs ADD COLUMN trace_context jsonb`)
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`ALTER TABLE stackshift.runs DROP COLUMN trace_context`)
}
