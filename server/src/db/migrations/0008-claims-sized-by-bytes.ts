import type { Knex } from 'knex'
import { claimRunsFunction } from '../functions/claim-runs.js'

/**
 * Claims sized by bytes as well as count. Runs keep the size of their payload
 * as received (payload_bytes, bytes of JSON text), so a claim can sum the
 * sizes of the runs it takes without reading their payloads; runs stored
 * before this migration have none, and the claim measures their payload
 * instead. Adding a nullable column without a default rewrites nothing.
 * claim_runs takes a byte budget now, a new parameter: the old function is
 * dropped first, in the same transaction.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE stackshift.runs ADD COLUMN payload_bytes integer;
    DROP FUNCTION IF EXISTS stackshift.claim_runs(text, text[], text[], integer, bigint, text);
    ${claimRunsFunction}
  `)
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP FUNCTION IF EXISTS stackshift.claim_runs(text, text[], text[], integer, bigint, text, bigint);
    ALTER TABLE stackshift.runs DROP COLUMN payload_bytes;
  `)
}
