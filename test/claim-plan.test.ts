import type { Knex } from 'knex'
import type pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createDatabase, migrateDatabase } from '../server/src/db/database.js'
import { claimRunsFunction } from '../server/src/db/functions/claim-runs.js'
import { runClaim } from '../server/src/db/queries/claim.js'
import { createTestDatabase } from './support/database.js'

/*
 * claim_runs forbids sequential and bitmap scans for its statement. These
 * tests show why: a worker that takes some of a queue's jobs, right after a
 * burst of them arrived, when the statistics were taken while the queue held
 * only other jobs. The planner then believes the job is absent and prefers
 * reading the whole table to reading the head of the ready index. Many
 * finished runs of the job are stored too: no other index (ListRuns' index of
 * jobs among them) may lead the claim to read them. The second test is the
 * evidence for the settings: should a PostgreSQL release plan the unpinned
 * function well, it fails, and the settings can go.
 */

const otherRuns = 20_000
const wantedRuns = 300
const finishedWantedRuns = 20_000
let db: Knex

beforeAll(async () => {
  db = createDatabase({ url: await createTestDatabase(), poolSize: 2 })
  await migrateDatabase(db)
  const insert = (count: number, job: string, priority: number, status = 'queued') => `
    INSERT INTO stackshift.runs (id, namespace, queue, job, payload, status, max_attempts, available_at, priority)
    SELECT gen_random_uuid(), 'default', 'mixed', '${job}', '{}', '${status}', 3, now(), ${priority} FROM generate_series(1, ${count})`
  await db.raw(insert(otherRuns, 'other', 0))
  await db.raw('ANALYZE stackshift.runs')
  await db.raw(insert(finishedWantedRuns, 'wanted', 5, 'completed'))
  await db.raw(insert(wantedRuns, 'wanted', 5))
  // The same function without its SET clauses, beside the real one.
  await db.raw(
    claimRunsFunction.replace('stackshift.claim_runs(', 'stackshift.claim_runs_unpinned(').replace(/^SET enable_\w+ = off\n/gm, ''),
  )
}, 60_000)

afterAll(async () => {
  // Unset when beforeAll failed before creating it.
  await (db as Knex | undefined)?.destroy()
})

/** Runs `claim` in a transaction that is rolled back; returns how many runs it claimed and how it read the runs table. */
async function scansOf(
  claim: (trx: Knex.Transaction) => Promise<number>,
): Promise<{ claimed: number; seqScans: number; rowsRead: number }> {
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
    const claimed = await claim(trx)
    const after = await reads()
    return { claimed, seqScans: after.scans - before.scans, rowsRead: after.rows - before.rows }
  } finally {
    await trx.rollback()
  }
}

it('a claim reads the head of the ready index even when the statistics say its job is absent', async () => {
  const { claimed, seqScans, rowsRead } = await scansOf(
    async (trx) =>
      (
        await runClaim(trx, {
          namespace: 'default',
          queues: ['mixed'],
          jobs: ['wanted'],
          limit: wantedRuns,
          maxBytes: 1024 * 1024,
          leaseMs: 60_000,
          workerId: 'w',
        })
      ).runs.length,
  )
  expect(claimed).toBe(wantedRuns)
  expect(seqScans).toBe(0)
  // Each claimed run is read twice (picked, then leased); nothing else is read.
  expect(rowsRead).toBe(2 * wantedRuns)
})

it('without its plan settings the same claim reads more than the whole queue', async () => {
  const { claimed, rowsRead } = await scansOf(async (trx) => {
    const { rows } = await trx.raw<pg.QueryResult<{ n: number }>>(
      `SELECT count(*)::int AS n FROM stackshift.claim_runs_unpinned('default', ARRAY['mixed'], ARRAY['wanted'], ?, 60000, 'w', 1048576)`,
      [wantedRuns],
    )
    return rows[0]!.n
  })
  expect(claimed).toBe(wantedRuns)
  expect(rowsRead).toBeGreaterThan(otherRuns)
})
