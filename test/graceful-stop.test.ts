import { StackShift, WorkerShutdownError } from '@stackshift/sdk'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createTestDatabase } from './support/database.js'
import { type TestServer, startTestServer } from './support/server.js'

let server: TestServer

beforeAll(async () => {
  server = await startTestServer(await createTestDatabase())
})

afterAll(async () => {
  await server.stop()
})

it('a worker stopped gracefully hands back its in-flight runs, and they complete elsewhere without waiting for the lease to expire', async () => {
  // Two processes' worth of clients: each registers its own handler for the job.
  const leaving = new StackShift({ address: server.address })
  const staying = new StackShift({ address: server.address })
  const leaseMs = 120_000
  let started = 0
  let allStarted!: () => void
  const isEveryRunStarted = new Promise<void>((resolve) => (allStarted = resolve))
  const abortReasons: unknown[] = []
  let firstStepCalls = 0

  leaving.job('transcode', async ({ step, signal }) => {
    await step.run('probe', () => {
      firstStepCalls++
      return { seconds: 90 }
    })
    if (++started === 5) allStarted()
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()))
    abortReasons.push(signal.reason)
    throw signal.reason
  })
  staying.job('transcode', async ({ step, run }) => {
    const probe = await step.run('probe', () => {
      firstStepCalls++
      return { seconds: -1 }
    })
    return { probedSeconds: probe.seconds, attempt: run.attempt }
  })

  const leavingWorker = leaving.worker({ queues: ['video'], concurrency: 5, leaseMs })
  await leavingWorker.start()
  const runs = await Promise.all(Array.from({ length: 5 }, (_, i) => leaving.queue('video').enqueue('transcode', { file: `f${i}.mov` })))
  await isEveryRunStarted

  const stayingWorker = staying.worker({ queues: ['video'], leaseMs })
  await stayingWorker.start()
  try {
    await leavingWorker.stop({ graceMs: 100 })
    expect(abortReasons).toHaveLength(5)
    for (const reason of abortReasons) expect(reason).toBeInstanceOf(WorkerShutdownError)

    // The lease is two minutes; the runs must finish long before it could expire.
    const done = await Promise.all(runs.map((run) => staying.waitForRun(run.id, { timeoutMs: 20_000 })))
    for (const run of done) {
      expect(run.status).toBe('completed')
      // A handed-back attempt does not count: the run finished on its first counted attempt.
      expect(run.attempts).toBe(1)
      expect(run.result).toEqual({ probedSeconds: 90, attempt: 1 })
    }
    expect(firstStepCalls).toBe(5)
  } finally {
    await stayingWorker.stop()
    leaving.close()
    staying.close()
  }
})

it('a worker stopped gracefully lets running handlers finish within the grace period', async () => {
  const client = new StackShift({ address: server.address })
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  let isRunning!: () => void
  const running = new Promise<void>((resolve) => (isRunning = resolve))
  client.job('finishesSoon', async () => {
    isRunning()
    await released
    return 'finished during shutdown'
  })
  const worker = client.worker({ queues: ['soon'] })
  await worker.start()
  try {
    const run = await client.queue('soon').enqueue('finishesSoon', {})
    await running
    const stopping = worker.stop({ graceMs: 30_000 })
    release()
    await stopping
    const done = await client.getRun(run.id)
    expect(done.status).toBe('completed')
    expect(done.result).toBe('finished during shutdown')
    expect(worker.activeRuns).toBe(0)
  } finally {
    client.close()
  }
})
