import { StackShift } from '@stackshift/sdk'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createTestDatabase } from './support/database.js'
import { type TestServer, startTestServer } from './support/server.js'

let databaseUrl: string
let server: TestServer

beforeAll(async () => {
  databaseUrl = await createTestDatabase()
  server = await startTestServer(databaseUrl)
})

afterAll(async () => {
  await server.stop()
})

it('a worker reconnects when its server restarts, and a run in progress during the restart still completes', async () => {
  const stackshift = new StackShift({ address: server.address })
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  let isRunning!: () => void
  const running = new Promise<void>((resolve) => (isRunning = resolve))
  stackshift.job('spansRestart', async ({ step, payload }) => {
    await step.run('before-restart', () => 'stored on the first server')
    if (payload === 'first') {
      isRunning()
      await released
    }
    await step.run('after-restart', () => 'stored on the second server')
    return payload
  })
  const worker = stackshift.worker({ queues: ['restarts'], leaseMs: 60_000 })
  await worker.start()
  try {
    const first = await stackshift.queue('restarts').enqueue('spansRestart', 'first')
    await running

    const port = server.server.port
    await server.stop()
    server = await startTestServer(databaseUrl, { port })
    release()

    const done = await stackshift.waitForRun(first.id, { timeoutMs: 30_000 })
    expect(done.status).toBe('completed')
    expect(done.attempts).toBe(1)
    expect(done.steps.map((s) => s.id)).toEqual(['before-restart', 'after-restart'])

    // The reconnected worker also takes new work from the new server.
    const second = await stackshift.queue('restarts').enqueue('spansRestart', 'second')
    expect((await stackshift.waitForRun(second.id, { timeoutMs: 30_000 })).result).toBe('second')
  } finally {
    await worker.stop()
    stackshift.close()
  }
})

it('a worker whose server was away for most of a minute is back within seconds of its return', async () => {
  // gRPC's own backoff between connection attempts grows to 2 minutes; by 45 s it waits about 25 s.
  const stackshift = new StackShift({ address: server.address })
  stackshift.job('afterAbsence', () => 'done')
  const worker = stackshift.worker({ queues: ['absence'] })
  await worker.start()
  try {
    const port = server.server.port
    await server.stop()
    await new Promise((resolve) => setTimeout(resolve, 45_000))
    server = await startTestServer(databaseUrl, { port })
    const returnedAt = Date.now()
    // A client of its own, whose calls are the test's: the worker's are under test. gRPC may share the
    // worker's connection with it, still waiting to try again: the idempotency key lets the enqueue retry.
    const client = new StackShift({ address: server.address })
    try {
      const run = await client.queue('absence').enqueue('afterAbsence', {}, { idempotencyKey: 'after-absence' })
      expect((await client.waitForRun(run.id, { timeoutMs: 60_000 })).status).toBe('completed')
      expect(Date.now() - returnedAt).toBeLessThan(12_000)
    } finally {
      client.close()
    }
  } finally {
    await worker.stop()
    stackshift.close()
  }
}, 120_000)
