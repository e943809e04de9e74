import type { Knex } from 'knex'
import type pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createDatabase, migrateDatabase } from '../server/src/db/database.js'
import { runEndAttempts, runLockHeldLeases } from '../server/src/db/queries/attempt-endings.js'
import { runClaim } from '../server/src/db/queries/claim.js'
import { runComplete, runHeartbeat, runRelease } from '../server/src/db/queries/lease-writes.js'
import { stepCompleteMany } from '../server/src/db/queries/step-memo.js'
import { runPromoteDue } from '../server/src/db/queries/timers.js'
import { waitResumeMatching } from '../server/src/db/queries/waits.js'
import type { ClaimedRun } from '../server/src/core/run.js'
import { createTestDatabase } from './support/database.js'

/*
 * Statistics taken while few runs hold a lease say the lease columns are
 * almost all NULL. Batch writes must still find their runs through the
 * primary key: a plan that scans the runs table costs in proportion to the
 * whole table (and to the batch times the runs it keeps), on every batch.
 * Each case runs in a transaction and reads that transaction's own scan
 * counts, so nothing else on the database can disturb them.
 */

const tableRuns = 20_000
const batchSize = 300
let db: Knex

beforeAll(async () => {
  db = createDatabase({ url: await createTestDatabase(), poolSize: 2 })
  await migrateDatabase(db)
  await db.raw(`
    INSERT INTO stackshift.runs (id, namespace, queue, job, payload, status, max_attempts, available_at)
    SELECT gen_random_uuid(), 'default', 'plans', 'j', '{}', 'queued', 3, now() FROM generate_series(1, ${tableRuns})
  `)
  await db.raw('ANALYZE stackshift.runs')
}, 60_000)

afterAll(async () => {
  // Unset when beforeAll failed before creating it.
  await (db as Knex | undefined)?.destroy()
})

async function claimBatch(): Promise<ClaimedRun[]> {
  const { runs } = await runClaim(db, {
    namespace: 'default',
    queues: ['plans'],
    jobs: ['j'],
    limit: batchSize,
    maxBytes: 1024 * 1024,
    leaseMs: 60_000,
    workerId: 'w',
  })
  expect(runs).toHaveLength(batchSize)
  return runs
}

/** How the runs table has been read so far in `trx`. */
async function runsScans(trx: Knex.Transaction): Promise<{ seqScans: number; indexScans: number }> {
  const { rows } = await trx.raw<pg.QueryResult<{ seqScans: number; indexScans: number }>>(
    `SELECT seq_scan::int AS "seqScans", idx_scan::int AS "indexScans" FROM pg_stat_xact_user_tables
     WHERE schemaname = 'stackshift' AND relname = 'runs'`,
  )
  return rows[0]!
}

/** Runs `write` in a transaction that is rolled back; returns what it returned and how the runs table was read. */
async function scansOf<T>(write: (trx: Knex.Transaction) => Promise<T>): Promise<{ result: T; seqScans: number; indexScans: number }> {
  const trx = await db.transaction()
  try {
    const result = await write(trx)
    return { result, ...(await runsScans(trx)) }
  } finally {
    await trx.rollback()
  }
}

const leasesOf = (runs: readonly ClaimedRun[]) => runs.map((run) => ({ runId: run.id, leaseToken: run.leaseToken, namespace: '*' }))

it('a batch of completions finds its runs by primary key and completes every one', async () => {
  const runs = await claimBatch()
  const { result, seqScans, indexScans } = await scansOf(async (trx) => {
    const counts = await runComplete(trx, { completions: runs.map((run, i) => ({ ...leasesOf([run])[0]!, resultJson: String(i) })) })
    const stored = await trx.raw<pg.QueryResult<{ n: number }>>(
      `SELECT count(*)::int AS n FROM stackshift.runs WHERE id = ANY(?) AND status = 'completed'`,
      [runs.map((run) => run.id)],
    )
    return { counts, completed: stored.rows[0]!.n }
  })
  expect(result.counts).toEqual([{ namespace: 'default', queue: 'plans', job: 'j', count: batchSize }])
  expect(result.completed).toBe(batchSize)
  expect(seqScans).toBe(0)
  expect(indexScans).toBeGreaterThan(0)
})

it('a batch of step results finds its runs by primary key and stores every step', async () => {
  const runs = await claimBatch()
  const { result, seqScans } = await scansOf((trx) =>
    stepCompleteMany(trx, {
      steps: runs.map((run) => ({ ...leasesOf([run])[0]!, stepId: 'a', resultJson: '1', durationMs: 1, kind: 'run' as const })),
      isRepeat: false,
    }),
  )
  expect(result.size).toBe(batchSize)
  expect(seqScans).toBe(0)
})

it('heartbeats, hand-backs and attempt endings find their runs by primary key', async () => {
  const runs = await claimBatch()
  const leases = leasesOf(runs)
  const heartbeat = await scansOf((trx) => runHeartbeat(trx, { leases, leaseMs: 60_000 }))
  expect(heartbeat.result.size).toBe(batchSize)
  expect(heartbeat.seqScans).toBe(0)
  const ended = await scansOf(async (trx) => {
    const locked = await runLockHeldLeases(trx, { leases })
    const ends = locked.map((run) => ({
      runId: run.id,
      status: 'queued' as const,
      delayMs: 0,
      error: { name: 'Error', message: 'boom' },
      isReportedByWorker: true,
    }))
    return { locked, retried: await runEndAttempts(trx, { ends }) }
  })
  expect(ended.result.locked).toHaveLength(batchSize)
  expect(ended.result.retried.size).toBe(batchSize)
  expect(ended.seqScans).toBe(0)
  const released = await scansOf((trx) => runRelease(trx, { leases }))
  expect(released.result).toHaveLength(batchSize)
  expect(released.seqScans).toBe(0)
})

/** Moves `batchSize` queued runs to `status` inside `trx`, after the statistics said none had it; returns their ids. */
async function setStatus(trx: Knex.Transaction, status: 'scheduled' | 'waiting'): Promise<string[]> {
  const { rows } = await trx.raw<pg.QueryResult<{ id: string }>>(
    `UPDATE stackshift.runs SET status = ?, available_at = now() - interval '1 second'
     WHERE id IN (SELECT id FROM stackshift.runs WHERE status = 'queued' LIMIT ${batchSize}) RETURNING id::text AS id`,
    [status],
  )
  return rows.map((row) => row.id)
}

async function queuedCount(trx: Knex.Transaction, ids: string[]): Promise<number> {
  const { rows } = await trx.raw<pg.QueryResult<{ n: number }>>(
    `SELECT count(*)::int AS n FROM stackshift.runs WHERE id = ANY(?) AND status = 'queued'`,
    [ids],
  )
  return rows[0]!.n
}

it('promoting due runs finds them and their rows without scanning the runs table', async () => {
  const trx = await db.transaction()
  try {
    const due = await setStatus(trx, 'scheduled')
    const { seqScans } = await runsScans(trx)
    const promoted = await runPromoteDue(trx, { limit: 1000 })
    expect(promoted).toEqual({ queues: [{ namespace: 'default', queue: 'plans', count: batchSize }], abandonedChildRunIds: [] })
    expect((await runsScans(trx)).seqScans).toBe(seqScans)
    expect(await queuedCount(trx, due)).toBe(batchSize)
  } finally {
    await trx.rollback()
  }
})

it('an event resumes its waiting runs without scanning the runs table', async () => {
  const trx = await db.transaction()
  try {
    const waiting = await setStatus(trx, 'waiting')
    await trx.raw(
      `INSERT INTO stackshift.waits (run_id, namespace, event_name, step_id, match)
       SELECT id, 'default', 'order.paid', 'paid', '{}' FROM unnest(?::uuid[]) AS id`,
      [waiting],
    )
    await trx.raw(
      `INSERT INTO stackshift.steps (run_id, step_id, status, attempt, started_at, finished_at)
       SELECT id, 'paid', 'waiting', 1, now(), now() FROM unnest(?::uuid[]) AS id`,
      [waiting],
    )
    const { seqScans } = await runsScans(trx)
    const event = { id: 'evt_1', name: 'order.paid', dataJson: '{"orderId":"o_1"}', receivedAt: new Date() }
    const resumed = await waitResumeMatching(trx, { namespace: 'default', event, resultJson: '{"resumed":true}' })
    expect(resumed).toHaveLength(batchSize)
    expect((await runsScans(trx)).seqScans).toBe(seqScans)
    expect(await queuedCount(trx, waiting)).toBe(batchSize)
    const { rows } = await trx.raw<pg.QueryResult<{ n: number }>>(
      `SELECT count(*)::int AS n FROM stackshift.steps WHERE run_id = ANY(?::uuid[]) AND status = 'completed' AND result = '{"resumed":true}'`,
      [waiting],
    )
    expect(rows[0]!.n).toBe(batchSize)
  } finally {
    await trx.rollback()
  }
})
