import type { Knex } from 'knex'
import { claimRunsFunction } from '../functions/claim-runs.js'

/**
 * Installs claim_runs from its source file. A database made before this
 * migration has an earlier version whose result columns may differ, which
 * CREATE OR REPLACE cannot change: that one is dropped first, in the same
 * transaction.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP FUNCTION IF EXISTS stackshift.claim_runs(text, text[], text[], integer, bigint, text);
    ${claimRunsFunction}
  `)
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`DROP FUNCTION IF EXISTS stackshift.claim_runs(text, text[], text[], integer, bigint, text)`)
}
