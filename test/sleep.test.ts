import { createServer } from 'node:net'
import { StackShift } from '@stackshift/sdk'
import type pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { connect, createTestDatabase } from './support/database.js'
import { useTestEnvironment } from './support/environment.js'
import { ChildScript } from './support/processes.js'
import { waitUntil } from './support/wait-until.js'

const env = useTestEnvironment()

/** Moves the wake times of the runs' pending sleeps an hour back: the hour they sleep passes. */
async function passAnHour(ids: readonly string[], db: pg.Client = env.db): Promise<void> {
  await db.query('BEGIN')
  await db.query(`UPDATE stackshift.steps SET wake_at = wake_at - interval '1 hour' WHERE run_id = ANY($1) AND status = 'waiting'`, [ids])
  await db.query(`UPDATE stackshift.runs SET available_at = available_at - interval '1 hour' WHERE id = ANY($1) AND status = 'waiting'`, [
    ids,
  ])
  await db.query('COMMIT')
}

it('a worker with concurrency 1 carries 200 sleeping runs at once: they hold no slot, and each completes after its sleep', async () => {
  const afterSleep = new Map<string, number>()
  env.stackshift.job<{ n: number }>('napper', async ({ payload, step, run }) => {
    await step.run('before', () => payload.n)
    await step.sleep('nap', '1h')
    await step.run('after', () => afterSleep.set(run.id, (afterSleep.get(run.id) ?? 0) + 1).size)
    return { n: payload.n }
  })
  await env.startWorker({ queues: ['naps'], jobs: ['napper'], concurrency: 1 })

  const runs = await env.stackshift.queue('naps').enqueueMany(Array.from({ length: 200 }, (_, n) => ({ job: 'napper', payload: { n } })))
  const ids = runs.map((run) => run.id)
  // All 200 asleep at once, on one slot: a sleeping run holds none.
  await waitUntil(
    async () =>
      (await env.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stackshift.runs WHERE id = ANY($1) AND status = 'waiting'`, [ids]))
        .rows[0]!.n,
    (waiting) => waiting === runs.length,
  )
  const asleep = await Promise.all(ids.map((id) => env.stackshift.getRun(id)))
  for (const run of asleep) {
    const nap = run.steps.find((step) => step.id === 'nap')!
    // An hour after the handler reached the sleep (a minute's slack for a slow machine).
    expect(nap.wakeAt!.getTime() - nap.startedAt!.getTime()).toBeGreaterThan(3_540_000)
  }
  await passAnHour(ids)
  const done = await Promise.all(ids.map((id) => env.stackshift.waitForRun(id)))

  expect(done.every((run) => run.status === 'completed')).toBe(true)
  expect(done.map((run) => (run.result as { n: number }).n)).toEqual(runs.map((_, n) => n))
  for (const run of done) {
    expect(afterSleep.get(run.id)).toBe(1)
    const nap = run.steps.find((step) => step.id === 'nap')!
    expect(nap).toMatchObject({ kind: 'sleep', status: 'completed', result: null })
    // Not woken before its (moved) time.
    expect(nap.finishedAt!.getTime()).toBeGreaterThanOrEqual(nap.wakeAt!.getTime())
    expect(run.steps.map((step) => step.id)).toEqual(['before', 'nap', 'after'])
  }
})

it('a sleeping run is WAITING with its wake time; sleepUntil a past instant does not suspend', async () => {
  let executions = 0
  env.stackshift.job('sleepUntilPast', async ({ step }) => {
    executions++
    await step.sleepUntil('past', new Date(Date.now() - 60_000))
    await step.sleep('long', '1h')
    return 'awake'
  })
  await env.startWorker({ queues: ['until'], jobs: ['sleepUntilPast'] })
  const { id } = await env.stackshift.queue('until').enqueue('sleepUntilPast', {})
  const waiting = await waitUntil(
    () => env.stackshift.getRun(id),
    (run) => run.status === 'waiting',
  )
  const long = waiting.steps.find((step) => step.id === 'long')!
  expect(long).toMatchObject({ kind: 'sleep', status: 'waiting', finishedAt: undefined })
  // An hour after the handler reached it (a minute's slack for a slow machine).
  expect(long.wakeAt!.getTime() - long.startedAt!.getTime()).toBeGreaterThan(3_540_000)
  expect(waiting.steps.find((step) => step.id === 'past')).toMatchObject({ kind: 'sleep', status: 'completed' })

  await passAnHour([id])
  const done = await env.stackshift.waitForRun(id)
  expect(done).toMatchObject({ status: 'completed', result: 'awake' })
  // Woken at its (moved) time, not before.
  const woken = done.steps.find((step) => step.id === 'long')!
  expect(woken.finishedAt!.getTime()).toBeGreaterThanOrEqual(woken.wakeAt!.getTime())
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
    await child.waitForLine(/StackShift server listening/, 50_000)
    return child
  }

  it('runs sleeping when the server is killed with SIGKILL wake once, not before their wake time, after it restarts', async () => {
    server = await startServerProcess()
    const client = new StackShift({ address: `127.0.0.1:${port}` })
    const wakes = new Map<string, number>()
    client.job('sleepThroughCrash', async ({ step, run }) => {
      await step.sleep('nap', '1h')
      await step.run('woke', () => wakes.set(run.id, (wakes.get(run.id) ?? 0) + 1).size)
      return 'ok'
    })
    const worker = client.worker({ queues: ['crash-naps'], concurrency: 5 })
    await worker.start()
    const db = await connect(databaseUrl)
    try {
      const runs = await client
        .queue('crash-naps')
        .enqueueMany(Array.from({ length: 20 }, () => ({ job: 'sleepThroughCrash', payload: {} })))
      await waitUntil(
        async () => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stackshift.runs WHERE status = 'waiting'`)).rows[0]!.n,
        (n) => n === runs.length,
      )
      await server.kill('SIGKILL')
      server = await startServerProcess()
      // Their hour passes while the restarted server runs: only its timers can wake them.
      await passAnHour(
        runs.map((run) => run.id),
        db,
      )

      const done = await Promise.all(runs.map((run) => client.waitForRun(run.id, { timeoutMs: 60_000 })))
      for (const run of done) {
        expect(run.status).toBe('completed')
        expect(wakes.get(run.id)).toBe(1)
        const nap = run.steps.find((step) => step.id === 'nap')!
        expect(nap.finishedAt!.getTime()).toBeGreaterThanOrEqual(nap.wakeAt!.getTime())
      }
    } finally {
      await db.end()
      await worker.stop()
      client.close()
    }
    // Two server starts of up to 50 s each, and the wait for the runs.
  }, 180_000)
}

async function freePort(): Promise<number> {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as { port: number }
  await new Promise((resolve) => probe.close(resolve))
  return port
}
