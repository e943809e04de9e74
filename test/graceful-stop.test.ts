import { StackShift, WorkerShutdownError } from '@stackshift/sdk'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createTestDatabase } from './support/database.js'
import { type TestServer, startTestServer } from './support/server.js'
import { waitUntil } from './support/wait-until.js'

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

it('a worker stopped without a grace period gives running handlers its shutdownGraceMs, then aborts them and hands their runs back', async () => {
  const client = new StackShift({ address: server.address })
  const shutdownGraceMs = 1500
  let isRunning!: () => void
  const running = new Promise<void>((resolve) => (isRunning = resolve))
  let abortedAt: number | undefined
  client.job('ignoresStop', async ({ signal }) => {
    isRunning()
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()))
    abortedAt = Date.now()
    throw signal.reason
  })
  const worker = client.worker({ queues: ['grace-option'], shutdownGraceMs, leaseMs: 120_000 })
  await worker.start()
  try {
    const run = await client.queue('grace-option').enqueue('ignoresStop', {})
    await running
    const stopAt = Date.now()
    await worker.stop()
    // The handler had the grace period: not less, and not the default 30 s.
    expect(abortedAt! - stopAt).toBeGreaterThanOrEqual(shutdownGraceMs - 50)
    expect(Date.now() - stopAt).toBeLessThan(20_000)
    // Handed back: queued again at once, its lease of two minutes given up, and the attempt not counted.
    expect(await client.getRun(run.id)).toMatchObject({ status: 'queued', attempts: 0, attemptHistory: [] })
  } finally {
    client.close()
  }
})

it('a stopping worker hands back the runs it holds ready at once, before its running handlers finish', async () => {
  const leaving = new StackShift({ address: server.address })
  const staying = new StackShift({ address: server.address })
  const started: string[] = []
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  leaving.job<{ n: number }>('prefetchedOrRunning', async ({ run }) => {
    started.push(run.id)
    await released
    return 'by the leaving worker'
  })
  staying.job('prefetchedOrRunning', () => 'by the staying worker')
  // One slot and three runs held ready beyond it; leases of two minutes, which the test does not wait out.
  const leavingWorker = leaving.worker({ queues: ['prefetch-back'], concurrency: 1, prefetch: 3, leaseMs: 120_000 })
  await leavingWorker.start()
  const stayingWorker = staying.worker({ queues: ['prefetch-back'] })
  try {
    const ids = (
      await leaving
        .queue('prefetch-back')
        .enqueueMany(Array.from({ length: 4 }, (_, n) => ({ job: 'prefetchedOrRunning', payload: { n } })))
    ).map((run) => run.id)
    const countStatus = async (status: string) =>
      (await Promise.all(ids.map((id) => leaving.getRun(id)))).filter((run) => run.status === status).length
    // One running, three held ready: all four leased to the leaving worker.
    await waitUntil(
      () => countStatus('running'),
      (leased) => leased === 4,
    )
    expect(started).toHaveLength(1)

    const stopping = leavingWorker.stop({ graceMs: 60_000 })
    // While its one handler still runs, the three it held ready are queued again.
    await waitUntil(
      () => countStatus('queued'),
      (queued) => queued === 3,
    )
    expect(started).toHaveLength(1)
    release()
    await stopping

    await stayingWorker.start()
    const done = await Promise.all(ids.map((id) => staying.waitForRun(id)))
    expect(done.map((run) => [run.id === started[0], run.result, run.attempts])).toEqual(
      ids.map((id) => (id === started[0] ? [true, 'by the leaving worker', 1] : [false, 'by the staying worker', 1])),
    )
    expect(started).toHaveLength(1)
  } finally {
    await stayingWorker.stop()
    leaving.close()
    staying.close()
  }
})
