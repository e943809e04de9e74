import type { Knex } from 'knex'
import type pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createDatabase, migrateDatabase } from '../server/src/db/database.js'
import { runFlowClaim } from '../server/src/db/queries/claim.js'
import { createTestDatabase } from './support/database.js'

/*
 * The flow claim (claim_flow_runs) reads a bounded number of rows, whatever
 * the backlog: 1,000 keys with 40 ready runs each, concurrency 2 per key and
 * fairness, 100 of the keys already at their limit and first in the round
 * (c0001 to c0100 sort before c0101). A claim of 200 reads the running runs of
 * the full keys it passes, one ready run of each of 200 keys, and the 200
 * it leases: nothing in proportion to the 40,000 waiting.
 */

const keys = 1000
const runsPerKey = 40
const fullKeys = 100
const claimSize = 200
let db: Knex

beforeAll(async () => {
  db = createDatabase({ url: await createTestDatabase(), poolSize: 2 })
  await migrateDatabase(db)
  await db.raw(`INSERT INTO stackshift.job_policies (namespace, job, policies, version)
    VALUES ('default', 'sync', '{"concurrency":{"limit":2,"keyPath":"customerId"},"fairness":{"keyPath":"customerId"}}', 1)`)
  // Ready runs register their keys (trigger flow_key_ready).
  await db.raw(`
    INSERT INTO stackshift.runs (id, namespace, queue, job, payload, status, max_attempts, available_at, concurrency_key)
    SELECT gen_random_uuid(), 'default', 'crm', 'sync', jsonb_build_object('customerId', 'c' || lpad(k::text, 4, '0')), 'queued', 3, now(), 'c' || lpad(k::text, 4, '0')
    FROM generate_series(1, ${keys}) AS k, generate_series(1, ${runsPerKey}) AS n`)
  await db.raw(`
    INSERT INTO stackshift.runs (id, namespace, queue, job, payload, status, max_attempts, available_at, concurrency_key,
      attempt, lease_token, lease_expires_at, started_at)
    SELECT gen_random_uuid(), 'default', 'crm', 'sync', '{}', 'running', 3, now(), 'c' || lpad(k::text, 4, '0'),
      1, gen_random_uuid(), now() + interval '1 hour', now()
    FROM generate_series(1, ${fullKeys}) AS k, generate_series(1, 2) AS n`)
  // The round starts at the first key: the full keys are the first read.

  await db.raw('ANALYZE')
}, 60_000)

afterAll(async () => {
  // Unset when beforeAll failed before creating it.
  await (db as Knex | undefined)?.destroy()
})

it('a flow claim reads the rows of the keys it serves, not the backlog, and skips keys at their limit', async () => {
  const trx = await db.transaction()
  const reads = async () =>
    (
      await trx.raw<pg.QueryResult<{ scans: number; rows: number }>>(
        `SELECT seq_scan::int AS scans, (coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))::int AS rows
         FROM pg_stat_xact_user_tables WHERE schemaname = 'stackshift' AND relname = 'runs'`,
      )
    ).rows[0]!
  try {
    const before = await reads()
    const claimed = await runFlowClaim(trx, {
      namespace: 'default',
      queue: 'crm',
      job: 'sync',
      limit: claimSize,
      maxBytes: 16 * 1024 * 1024,
      leaseMs: 60_000,
      workerId: 'w',
    })
    const after = await reads()
    expect(claimed.runs).toHaveLength(claimSize)
    // One run of each of 200 keys, none of a key at its limit: round robin, one per key per round.
    const payloads = claimed.runs.map((run) => (JSON.parse(run.payloadJson) as { customerId: string }).customerId)
    expect(new Set(payloads).size).toBe(claimSize)
    expect(payloads.every((key) => Number(key.slice(1)) > fullKeys)).toBe(true)
    expect(after.scans - before.scans).toBe(0)
    // The full keys' running runs (2 each), a ready run per served key, the leased runs: about 600.
    expect(after.rows - before.rows).toBeLessThanOrEqual(2 * fullKeys + 2 * claimSize + claimSize)
  } finally {
    await trx.rollback()
  }
})
