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
