import type { Knex } from 'knex'

/**
 * A run has a lease deadline exactly while it is running. Worker writes are
 * fenced by `lease_expires_at > now()` alone, without `status = 'running'`: that
 * condition would let the planner answer a batch by scanning every running run
 * in runs_leased (its statistics often count none, right after a burst of
 * claims), which makes each completion batch cost as much as all runs in
 * flight. The constraint keeps the shorter condition exact.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE stackshift.runs ADD CONSTRAINT runs_lease_while_running
      CHECK ((status = 'running') = (lease_expires_at IS NOT NULL))
  `)
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`ALTER TABLE stackshift.runs DROP CONSTRAINT runs_lease_while_running`)
}
