import { createServer } from 'node:net'
import { StackShift } from '@stackshift/sdk'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { connect, createTestDatabase } from './support/database.js'
import { useTestEnvironment } from './support/environment.js'
import { ChildScript } from './support/processes.js'
import { waitUntil } from './support/wait-until.js'

const env = useTestEnvironment()

it('a worker with concurrency 1 carries 200 sleeping runs at once: they hold no slot, and each completes after its sleep', async () => {
  const afterSleep = new Map<string, number>()
  env.stackshift.job<{ n: number }>('napper', async ({ payload, step, run }) => {
    await step.run('before', () => payload.n)
    await step.sleep('nap', '2s')
    await step.run('after', () => afterSleep.set(run.id, (afterSleep.get(run.id) ?? 0) + 1).size)
    return { n: payload.n }
  })
  await env.startWorker({ queues: ['naps'], jobs: ['napper'], concurrency: 1 })

  const startedAt = Date.now()
  const runs = await env.stackshift.queue('naps').enqueueMany(Array.from({ length: 200 }, (_, n) => ({ job: 'napper', payload: { n } })))
  const done = await Promise.all(runs.map((run) => env.stackshift.waitForRun(run.id, { timeoutMs: 120_000 })))
  const elapsedMs = Date.now() - startedAt

  expect(done.every((run) => run.status === 'completed')).toBe(true)
  expect(done.map((run) => (run.result as { n: number }).n)).toEqual(runs.map((_, n) => n))
  // In line behind each other, 200 two-second sleeps would take 400 s.
  expect(elapsedMs).toBeLessThan(100_000)
  for (const run of done) {
    expect(afterSleep.get(run.id)).toBe(1)
    const nap = run.steps.find((step) => step.id === 'nap')!
    expect(nap).toMatchObject({ kind: 'sleep', status: 'completed', result: null })
    // Not woken before its time (two seconds after the handler reached the sleep).
    expect(nap.finishedAt!.getTime()).toBeGreaterThanOrEqual(nap.wakeAt!.getTime())
    expect(nap.wakeAt!.getTime() - nap.startedAt!.getTime()).toBeGreaterThan(1000)
    expect(run.steps.map((step) => step.id)).toEqual(['before', 'nap', 'after'])
  }
})

it('a sleeping run is WAITING with its wake time; sleepUntil a past instant does not suspend', async () => {
  let executions = 0
  env.stackshift.job('sleepUntilPast', async ({ step }) => {
    executions++
    await step.sleepUntil('past', new Date(Date.now() - 60_000))
    await step.sleep('short', 300)
    return 'awake'
  })
  await env.startWorker({ queues: ['until'], jobs: ['sleepUntilPast'] })
  const { id } = await env.stackshift.queue('until').enqueue('sleepUntilPast', {})
  const waiting = await waitUntil(
    () => env.stackshift.getRun(id),
    (run) => run.status === 'waiting',
  )
  const short = waiting.steps.find((step) => step.id === 'short')!
  expect(short).toMatchObject({ kind: 'sleep', status: 'waiting', finishedAt: undefined })
  expect(short.wakeAt).toBeInstanceOf(Date)
  expect(waiting.steps.find((step) => step.id === 'past')).toMatchObject({ kind: 'sleep', status: 'completed' })

  const done = await env.stackshift.waitForRun(id)
  expect(done).toMatchObject({ status: 'completed', result: 'awake' })
  // One execution up to the sleep, one after it.
  expect(executions).toBe(2)
})

serverRestartTests()

/** Timers live in PostgreSQL: a server killed while runs sleep wakes them after it restarts, each once. */
function serverRestartTests(): void {
  let databaseUrl: string
  let port: number
  let server: ChildScript | undefined

  beforeAll(async () => {
    databaseUrl = await createTestDatabase()
    port = await freePort()
  })

  afterAll(async () => {
    await server?.kill('SIGKILL')
  })

  async function startServerProcess(): Promise<ChildScript> {
    const child = new ChildScript('server/src/main.ts', {
      DATABASE_URL: databaseUrl,
      STACKSHIFT_HOST: '127.0.0.1',
      STACKSHIFT_PORT: String(port),
      STACKSHIFT_POLL_INTERVAL_MS: '500',
    })
    await child.waitForLine(/StackShift server listening/, 60_000)
    return child
  }

  it('runs sleeping when the server is killed with SIGKILL wake once, not before their wake time, after it restarts', async () => {
    server = await startServerProcess()
    const client = new StackShift({ address: `127.0.0.1:${port}` })
    const wakes = new Map<string, number>()
    client.job('sleepThroughCrash', async ({ step, run }) => {
      await step.sleep('nap', '3s')
      await step.run('woke', () => wakes.set(run.id, (wakes.get(run.id) ?? 0) + 1).size)
      return 'ok'
    })
    const worker = client.worker({ queues: ['crash-naps'], concurrency: 5 })
    await worker.start()
    try {
      const runs = await client
        .queue('crash-naps')
        .enqueueMany(Array.from({ length: 20 }, () => ({ job: 'sleepThroughCrash', payload: {} })))
      const db = await connect(databaseUrl)
      try {
        await waitUntil(
          async () => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stackshift.runs WHERE status = 'waiting'`)).rows[0]!.n,
          (n) => n === runs.length,
        )
      } finally {
        await db.end()
      }
      await server.kill('SIGKILL')
      server = await startServerProcess()

      const done = await Promise.all(runs.map((run) => client.waitForRun(run.id, { timeoutMs: 60_000 })))
      for (const run of done) {
        expect(run.status).toBe('completed')
        expect(wakes.get(run.id)).toBe(1)
        const nap = run.steps.find((step) => step.id === 'nap')!
        // How soon after its wake time depends on how fast the worker reconnects to the
        // restarted server (its backoff reaches seconds); waitForRun's timeout bounds it.
        expect(nap.finishedAt!.getTime()).toBeGreaterThanOrEqual(nap.wakeAt!.getTime())
      }
    } finally {
      await worker.stop()
      client.close()
    }
  })
}

async function freePort(): Promise<number> {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as { port: number }
  await new Promise((resolve) => probe.close(resolve))
  return port
}
