import { type EnqueuedRun, StackShift, UnavailableError } from '@stackshift/sdk'
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import { connect } from './support/database.js'
import { useTestEnvironment } from './support/environment.js'
import { type TcpProxy, startTcpProxy } from './support/tcp-proxy.js'
import { waitUntil } from './support/wait-until.js'

/*
 * The SDK sends a call again while the server cannot be reached (UNAVAILABLE),
 * when the call is safe to repeat: reads, and enqueues that carry an
 * idempotency key. An enqueue without one is not repeated: its first try may
 * have stored the run, and a second would store it again. The client here
 * reaches the server through a TCP proxy that the test cuts.
 */

const env = useTestEnvironment()
let proxy: TcpProxy
let client: StackShift

beforeAll(async () => {
  proxy = await startTcpProxy(`http://${env.server.address}`)
  client = new StackShift({ address: new URL(proxy.url).host })
})

// A test that failed while the link was cut leaves it restored for the next.
afterEach(() => proxy.restore())

afterAll(async () => {
  client.close()
  await proxy.close()
})

async function countRuns(where: string, values: unknown[]): Promise<number> {
  const { rows } = await env.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stackshift.runs WHERE ${where}`, values)
  return rows[0]!.n
}

it('a read is sent again while the server cannot be reached, and answered once it can', async () => {
  const { id } = await client.queue('reads').enqueue('nobodyRunsThis', {})
  const refusedBefore = proxy.refusedConnections
  proxy.cut()
  const reading = client.getRun(id)
  // Tries of the read have found the server unreachable (a read that gave up fails here).
  await Promise.race([
    waitUntil(
      () => proxy.refusedConnections,
      (refused) => refused > refusedBefore,
    ),
    reading,
  ])
  proxy.restore()
  expect(await reading).toMatchObject({ id, status: 'queued' })
})

/** Connects the client (again, after an earlier test's cut): a keyed enqueue is sent until it is answered. */
function warmUp(key: string): Promise<EnqueuedRun> {
  return client.queue('lost-answers').enqueue('warmUp', {}, { idempotencyKey: `warm-up:${key}` })
}

/**
 * Makes the server store an enqueue whose answer never reaches the client:
 * the insert waits behind a lock until the client's connection is cut, then
 * commits. Resolves once the run is stored, with the connection still cut and
 * the enqueue's promise not awaited (wrapped, so that returning it does not
 * await it).
 */
async function loseTheAnswer(
  enqueue: () => Promise<EnqueuedRun>,
  isStored: () => Promise<boolean>,
): Promise<{ enqueued: Promise<EnqueuedRun> }> {
  const blocker = await connect(env.databaseUrl)
  let enqueued: Promise<EnqueuedRun>
  try {
    await blocker.query('BEGIN')
    await blocker.query('LOCK TABLE stackshift.runs IN EXCLUSIVE MODE')
    enqueued = enqueue()
    // Keeps an early rejection from counting as unhandled; the caller awaits `enqueued`.
    enqueued.catch(() => {})
    await waitUntil(
      async () =>
        (
          await env.db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO stackshift.runs%'`,
          )
        ).rows[0]!.n,
      (waiting) => waiting === 1,
    )
    proxy.cut()
    await blocker.query('COMMIT')
  } finally {
    await blocker.end()
  }
  await waitUntil(isStored, Boolean)
  return { enqueued }
}

it('an enqueue whose answer was lost is sent again if it has an idempotency key, and finds its run stored', async () => {
  await warmUp('before-keyed')
  const isStored = async () => (await countRuns(`idempotency_key = $1`, ['lost:keyed'])) === 1
  const { enqueued } = await loseTheAnswer(
    () => client.queue('lost-answers').enqueue('keyed', {}, { idempotencyKey: 'lost:keyed' }),
    isStored,
  )
  proxy.restore()
  const run = await enqueued
  // Deduplicated: this answer is the second try's, which found the run the first stored.
  expect(run.deduplicated).toBe(true)
  const { rows } = await env.db.query<{ id: string }>(`SELECT id FROM stackshift.runs WHERE idempotency_key = 'lost:keyed'`)
  expect(rows).toEqual([{ id: run.id }])
})

it('an enqueue without an idempotency key whose answer was lost fails, and is not sent again', async () => {
  const { id: warmUpId } = await warmUp('before-unkeyed')
  const isStored = async () => (await countRuns(`job = $1`, ['unkeyed'])) === 1
  const { enqueued } = await loseTheAnswer(() => client.queue('lost-answers').enqueue('unkeyed', {}), isStored)
  // Restored first: an enqueue that was being sent again would now go through.
  proxy.restore()
  await expect(enqueued).rejects.toBeInstanceOf(UnavailableError)
  // Once a read (sent again until it is answered) has gone through, the connection is back.
  await client.getRun(warmUpId)
  expect(await countRuns(`job = $1`, ['unkeyed'])).toBe(1)
})
