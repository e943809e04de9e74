import { StackShift } from '@stackshift/sdk'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { connect, createTestDatabase } from './support/database.js'
import { type TestServer, startTestServer } from './support/server.js'
import { type TcpProxy, startTcpProxy } from './support/tcp-proxy.js'
import { waitUntil } from './support/wait-until.js'

/*
 * The server answers a worker's writes UNAVAILABLE while it cannot reach
 * PostgreSQL. The worker sends them again until they are stored: an outage
 * shorter than the lease costs no attempt, and no step runs twice.
 */

let proxy: TcpProxy
let server: TestServer
let stackshift: StackShift
let databaseUrl: string
/** What the SDK warned about. */
const warnings: string[] = []

beforeAll(async () => {
  databaseUrl = await createTestDatabase()
  proxy = await startTcpProxy(databaseUrl)
  // The pool gives up on a connection quickly, so the outage shows as UNAVAILABLE answers rather than slow ones.
  server = await startTestServer(proxy.url, { leaseMs: 60_000 })
  stackshift = new StackShift({
    address: server.address,
    logger: { debug: () => {}, info: () => {}, warn: (message) => warnings.push(message), error: () => {} },
  })
})

afterAll(async () => {
  stackshift.close()
  proxy.restore()
  await server.stop()
  await proxy.close()
})

it('steps and completions refused during a database outage are sent again and stored once, in the same attempt', async () => {
  let releaseStep: () => void = () => {}
  const stepStarted = new Promise<void>((started) => {
    stackshift.job('outage', async ({ step }) => {
      const value = await step.run('first', async () => {
        started()
        await new Promise<void>((release) => (releaseStep = release))
        return 41
      })
      const next = await step.run('second', () => value + 1)
      return { next }
    })
  })
  const worker = stackshift.worker({ queues: ['outage'], concurrency: 1 })
  await worker.start()
  try {
    const run = await stackshift.queue('outage').enqueue('outage', {})
    await stepStarted
    proxy.cut()
    releaseStep()
    // Writes made now are refused: the first step's result waits in the worker, which
    // says so when it is first refused.
    await waitUntil(
      () => warnings,
      (warned) => warned.includes('a write was not stored; sending it again'),
    )
    proxy.restore()
    const db = await connect(databaseUrl)
    try {
      await waitUntil(
        async () => (await db.query<{ status: string }>(`SELECT status FROM stackshift.runs WHERE id = $1`, [run.id])).rows[0]?.status,
        (status) => status === 'completed',
        30_000,
      )
      const stored = await stackshift.getRun(run.id)
      expect(stored).toMatchObject({ status: 'completed', result: { next: 42 }, attempts: 1 })
      expect(stored.attemptHistory.map((attempt) => attempt.outcome)).toEqual(['completed'])
      expect(stored.steps.map((step) => [step.id, step.result, step.attempt])).toEqual([
        ['first', 41, 1],
        ['second', 42, 1],
      ])
    } finally {
      await db.end()
    }
  } finally {
    await worker.stop()
  }
})

it('State Store operations and events inside a run outlast an outage longer than a client call retries, in the same attempt', async () => {
  let openGate: () => void = () => {}
  const gate = new Promise<void>((resolve) => (openGate = resolve))
  const handlerStarted = new Promise<void>((started) => {
    stackshift.job('long-outage', async ({ step, state }) => {
      started()
      await gate
      // Both at once, so both meet the outage.
      const [count, sent] = await Promise.all([state.increment('outage-counter', 1), step.sendEvent('notify', { name: 'outage.over' })])
      return { count, eventId: sent.id }
    })
  })
  const worker = stackshift.worker({ queues: ['long-outage'], concurrency: 1 })
  await worker.start()
  try {
    const run = await stackshift.queue('long-outage').enqueue('long-outage', {})
    await handlerStarted
    proxy.cut()
    openGate()
    // Longer than the 10 s a client call outside a run keeps retrying.
    await new Promise((resolve) => setTimeout(resolve, 11_000))
    proxy.restore()
    const stored = await stackshift.waitForRun(run.id, { timeoutMs: 30_000 })
    expect(stored).toMatchObject({ status: 'completed', attempts: 1, result: { count: 1, eventId: `${run.id}:notify` } })
    expect(stored.attemptHistory.map((attempt) => attempt.outcome)).toEqual(['completed'])
    expect(await stackshift.state.get('outage-counter')).toBe(1)
  } finally {
    await worker.stop()
  }
}, 60_000)
