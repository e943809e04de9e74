import { StackShift } from '@stackshift/sdk'
import type pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { connect, createTestDatabase } from './support/database.js'
import { type RawClient, createRawClient } from './support/raw-client.js'
import { type TestServer, startTestServer } from './support/server.js'

let server: TestServer
let stackshift: StackShift
let raw: RawClient
let db: pg.Client

beforeAll(async () => {
  const url = await createTestDatabase()
  // A minute-long backstop poll: anything that happens sooner was woken on purpose.
  server = await startTestServer(url, { pollIntervalMs: 60_000 })
  stackshift = new StackShift({ address: server.address })
  raw = createRawClient(server.address)
  db = await connect(url)
})

afterAll(async () => {
  stackshift.close()
  raw.close()
  await db.end()
  await server.stop()
})

it('an enqueue wakes a waiting ClaimTask long-poll without polling', async () => {
  const claim = raw.workers('ClaimTask', { queues: ['wake'], jobs: ['j'], wait_ms: 30_000 })
  // Let the long-poll find the queue empty and go to sleep first.
  await new Promise((resolve) => setTimeout(resolve, 200))
  const { run_id } = await raw.runs('Enqueue', { run: { queue: 'wake', job: 'j' } })
  const { tasks } = await claim
  expect(tasks.map((task: { run_id: string }) => task.run_id)).toEqual([run_id])
})

it('a ClaimTask long-poll that sees nothing returns no tasks when its wait ends', async () => {
  const { tasks } = await raw.workers('ClaimTask', { queues: ['empty'], jobs: ['j'], wait_ms: 300 })
  expect(tasks).toEqual([])
})

it('claims are sized to free slots: a worker with concurrency 3 holds 3 leases, not more', async () => {
  let started = 0
  let threeStarted!: () => void
  const areThreeRunning = new Promise<void>((resolve) => (threeStarted = resolve))
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  stackshift.job('holdsSlot', async () => {
    if (++started === 3) threeStarted()
    await released
  })
  const ids = (await stackshift.queue('slots').enqueueMany(Array.from({ length: 10 }, () => ({ job: 'holdsSlot', payload: {} })))).map((r) => r.id)
  const worker = stackshift.worker({ queues: ['slots'], jobs: ['holdsSlot'], concurrency: 3 })
  await worker.start()
  try {
    await areThreeRunning
    const { rows } = await db.query(`SELECT status::text, count(*)::int AS n FROM stackshift.runs WHERE id = ANY($1) GROUP BY 1 ORDER BY 1`, [ids])
    expect(rows).toEqual([
      { status: 'queued', n: 7 },
      { status: 'running', n: 3 },
    ])
    release()
    for (const id of ids) expect((await stackshift.waitForRun(id)).status).toBe('completed')
    expect(started).toBe(10)
  } finally {
    await worker.stop()
  }
})

it('higher priority runs are claimed first, then the oldest', async () => {
  const order: string[] = []
  stackshift.job('ordered', ({ payload }) => {
    order.push(payload as string)
  })
  const queue = stackshift.queue('priorities')
  const runs = [
    await queue.enqueue('ordered', 'normal-1'),
    await queue.enqueue('ordered', 'low', { priority: -5 }),
    await queue.enqueue('ordered', 'urgent', { priority: 10 }),
    await queue.enqueue('ordered', 'normal-2'),
  ]
  const worker = stackshift.worker({ queues: ['priorities'], jobs: ['ordered'], concurrency: 1 })
  await worker.start()
  try {
    for (const run of runs) await stackshift.waitForRun(run.id)
    expect(order).toEqual(['urgent', 'normal-1', 'normal-2', 'low'])
  } finally {
    await worker.stop()
  }
})

it('a delayed run stays queued until it is due and starts after its available time', async () => {
  stackshift.job('delayed', () => 'ran')
  const worker = stackshift.worker({ queues: ['later'], jobs: ['delayed'] })
  await worker.start()
  try {
    const farAway = await stackshift.queue('later').enqueue('delayed', {}, { runAt: new Date(Date.now() + 3_600_000) })
    const soon = await stackshift.queue('later').enqueue('delayed', {}, { delay: '300ms' })

    const done = await stackshift.waitForRun(soon.id)
    expect(done.status).toBe('completed')
    expect(done.attemptHistory[0]!.startedAt!.getTime()).toBeGreaterThanOrEqual(done.availableAt!.getTime())
    expect(done.availableAt!.getTime() - done.createdAt!.getTime()).toBeGreaterThanOrEqual(300)

    const waiting = await stackshift.getRun(farAway.id)
    expect(waiting.status).toBe('queued')
    expect(waiting.attempts).toBe(0)
    expect(waiting.availableAt!.getTime()).toBeGreaterThan(Date.now() + 3_000_000)
  } finally {
    await worker.stop()
  }
})

it('a worker takes runs only of the jobs it announced', async () => {
  stackshift.job('known', () => 'ok')
  const unknown = await stackshift.queue('mixed').enqueue('registeredElsewhere', {})
  const known = await stackshift.queue('mixed').enqueue('known', {})
  const worker = stackshift.worker({ queues: ['mixed'], jobs: ['known'] })
  await worker.start()
  try {
    expect((await stackshift.waitForRun(known.id)).status).toBe('completed')
    const untouched = await stackshift.getRun(unknown.id)
    expect(untouched.status).toBe('queued')
    expect(untouched.attempts).toBe(0)
  } finally {
    await worker.stop()
  }
})
