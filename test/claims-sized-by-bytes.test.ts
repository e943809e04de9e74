import type { Knex } from 'knex'
import { StackShift } from '@stackshift/sdk'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createDatabase } from '../server/src/db/database.js'
import { runClaim } from '../server/src/db/queries/claim.js'
import { runRelease } from '../server/src/db/queries/lease-writes.js'
import { stepCompleteMany } from '../server/src/db/queries/step-memo.js'
import { useTestEnvironment } from './support/environment.js'
import { startTestServer } from './support/server.js'

/*
 * A claim leases runs in claim order while the sum of their sizes (payload as
 * received, plus the memo of a run that executed before) stays within its
 * byte budget, and always at least one. A run too large to send in one
 * message is failed with a clear error instead of being leased again and
 * again. The backstop poll is set to a minute: nothing here waits for it.
 */

const env = useTestEnvironment({ pollIntervalMs: 60_000 })
let db: Knex

beforeAll(() => {
  db = createDatabase({ url: env.databaseUrl, poolSize: 2 })
})

afterAll(async () => {
  await (db as Knex | undefined)?.destroy()
})

/** JSON text of exactly `bytes` bytes. */
const payloadOf = (bytes: number) => JSON.stringify('x'.repeat(bytes - 2))

const claim = (queue: string, limit: number, maxBytes: number) =>
  runClaim(db, { namespace: 'default', queues: [queue], jobs: ['j'], limit, maxBytes, leaseMs: 60_000, workerId: 'w' })

async function enqueue(queue: string, payloads: Array<{ bytes: number; priority?: number }>): Promise<string[]> {
  const ids: string[] = []
  for (const { bytes, priority } of payloads) {
    ids.push((await env.raw.runs('Enqueue', { run: { queue, job: 'j', payload_json: payloadOf(bytes), priority } })).run_id)
  }
  return ids
}

it('a claim leases runs in claim order while their payloads fit in its byte budget, and says it stopped short', async () => {
  const ids = await enqueue(
    'budget',
    Array.from({ length: 10 }, () => ({ bytes: 1000 })),
  )
  const first = await claim('budget', 10, 3500)
  expect(first.runs.map((run) => run.id)).toEqual(ids.slice(0, 3))
  expect(first.isCutByBytes).toBe(true)
  // The count ends this one: not cut by bytes.
  const second = await claim('budget', 2, 3500)
  expect(second.runs.map((run) => run.id)).toEqual(ids.slice(3, 5))
  expect(second.isCutByBytes).toBe(false)
  // Everything left fits.
  const rest = await claim('budget', 10, 1_000_000)
  expect(rest.runs.map((run) => run.id)).toEqual(ids.slice(5))
  expect(rest.isCutByBytes).toBe(false)
})

it('a run larger than the budget is leased alone', async () => {
  const [large, small] = await enqueue('alone', [{ bytes: 5000, priority: 1 }, { bytes: 10 }])
  const batch = await claim('alone', 10, 3500)
  expect(batch.runs.map((run) => run.id)).toEqual([large])
  expect(batch.isCutByBytes).toBe(true)
  expect((await claim('alone', 10, 3500)).runs.map((run) => run.id)).toEqual([small])
})

it("a run that executed before counts its memo's results too", async () => {
  const [resumed, next] = await enqueue('memo', [{ bytes: 100, priority: 1 }, { bytes: 100 }])
  const { runs } = await claim('memo', 1, 1_000_000)
  const lease = { runId: resumed!, leaseToken: runs[0]!.leaseToken, namespace: '*' }
  await stepCompleteMany(db, {
    steps: [{ ...lease, stepId: 'big', resultJson: payloadOf(3000), durationMs: 1, kind: 'run' }],
    isRepeat: false,
  })
  await runRelease(db, { leases: [lease] })
  // 100 + 3,000 bytes: alone in a budget of 2,000, where two payloads of 100 would both fit.
  const batch = await claim('memo', 10, 2000)
  expect(batch.runs.map((run) => run.id)).toEqual([resumed])
  expect(batch.runs[0]!.memo).toEqual([{ stepId: 'big', resultJson: payloadOf(3000) }])
  expect(batch.isCutByBytes).toBe(true)
  expect((await claim('memo', 10, 2000)).runs.map((run) => run.id)).toEqual([next])
})

it('a worker drains runs whose claims are cut by bytes without waiting for the backstop poll', async () => {
  env.stackshift.job('heavy', ({ payload }) => (payload as string).length)
  // 24 runs of 400 KiB: about seven runs per 3 MiB claim.
  const ids = (
    await env.stackshift.queue('heavy').enqueueMany(Array.from({ length: 24 }, () => ({ job: 'heavy', payload: 'y'.repeat(400 * 1024) })))
  ).map((run) => run.id)
  await env.startWorker({ queues: ['heavy'], concurrency: 50, prefetch: 0 })
  const done = await Promise.all(ids.map((id) => env.stackshift.waitForRun(id, { timeoutMs: 20_000 })))
  expect(done.map((run) => run.status)).toEqual(ids.map(() => 'completed'))
})

it('a run too large for one message fails with an error saying so, and the worker goes on with the next', async () => {
  // Enqueued through the test's server; worked on through one that sends at most 64 KiB a message.
  const tooLarge = await env.stackshift.queue('sized').enqueue('sized', 'z'.repeat(100 * 1024), { priority: 1 })
  const small = await env.stackshift.queue('sized').enqueue('sized', 'small')
  const server = await startTestServer(env.databaseUrl, { maxMessageBytes: 64 * 1024 })
  const client = new StackShift({ address: server.address })
  try {
    client.job('sized', ({ payload }) => (payload as string).length)
    const worker = client.worker({ queues: ['sized'] })
    await worker.start()
    try {
      // Read through the test's server: the run, payload included, does not fit in 64 KiB either.
      const failed = await env.stackshift.waitForRun(tooLarge.id, { timeoutMs: 20_000 })
      expect(failed.status).toBe('failed')
      expect(failed.error).toMatchObject({ name: 'TaskTooLargeError' })
      expect(failed.error!.message).toMatch(
        /^the run cannot be delivered to a worker: its payload and step results come to \d+ bytes as a task, more than the 64512 that fit in one message \(STACKSHIFT_MAX_MESSAGE_BYTES\)$/,
      )
      expect(failed.attempts).toBe(1)
      expect((await env.stackshift.waitForRun(small.id, { timeoutMs: 20_000 })).result).toBe(5)
    } finally {
      await worker.stop()
    }
  } finally {
    client.close()
    await server.stop()
  }
})
