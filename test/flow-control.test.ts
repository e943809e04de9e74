import { InvalidArgumentError, StackShift, type Worker } from '@stackshift/sdk'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { useTestEnvironment } from './support/environment.js'
import { type TestServer, startTestServer } from './support/server.js'
import { waitUntil } from './support/wait-until.js'

/*
 * Flow control: policies declared with a job (or configured), enforced by the
 * server where runs are claimed. The backstop poll is set to a minute, so
 * every start here follows a wake: an enqueue, a freed slot, a rate window
 * opening, a changed policy.
 */

const env = useTestEnvironment({ pollIntervalMs: 60_000 })
let second: TestServer
let secondClient: StackShift

beforeAll(async () => {
  second = await startTestServer(env.databaseUrl, { pollIntervalMs: 60_000 })
  secondClient = new StackShift({ address: second.address })
})

afterAll(async () => {
  // Unset when beforeAll failed early.
  ;(secondClient as StackShift | undefined)?.close()
  await (second as TestServer | undefined)?.stop()
})

/** Counts how many handlers of each key run at once, and the most seen. */
class ConcurrencyRecorder {
  private readonly running = new Map<string, number>()
  readonly most = new Map<string, number>()
  total = 0
  mostTotal = 0

  enter(key: string): void {
    const now = (this.running.get(key) ?? 0) + 1
    this.running.set(key, now)
    this.most.set(key, Math.max(this.most.get(key) ?? 0, now))
    this.total++
    this.mostTotal = Math.max(this.mostTotal, this.total)
  }

  leave(key: string): void {
    this.running.set(key, this.running.get(key)! - 1)
    this.total--
  }
}

/** A promise the test resolves: handlers wait on it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void
  const opened = new Promise<void>((resolve) => (open = resolve))
  return { opened, open }
}

async function statusCount(job: string, status: string): Promise<number> {
  const { rows } = await env.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stackshift.runs WHERE job = $1 AND status = $2`, [
    job,
    status,
  ])
  return rows[0]!.n
}

it('per-key concurrency 2 holds across 3 workers on 2 servers: no key ever has more than 2 runs executing, and all complete', async () => {
  const recorder = new ConcurrencyRecorder()
  const workers: Worker[] = []
  // Two workers on the first server (each with a client of its own, as separate processes), one on the second.
  const extraClient = new StackShift({ address: env.server.address })
  for (const own of [env.stackshift, extraClient, secondClient]) {
    own.job<{ customerId: string }>('syncCustomer', { concurrency: { limit: 2, key: 'customerId' } }, async ({ payload }) => {
      recorder.enter(payload.customerId)
      await new Promise((resolve) => setTimeout(resolve, 15))
      recorder.leave(payload.customerId)
    })
    const worker = own.worker({ queues: ['sync'], jobs: ['syncCustomer'], concurrency: 4 })
    await worker.start()
    workers.push(worker)
  }
  try {
    const customers = ['acme', 'globex', 'initech']
    // Half enqueued on each server.
    await env.stackshift
      .queue('sync')
      .enqueueMany(Array.from({ length: 60 }, (_, i) => ({ job: 'syncCustomer', payload: { customerId: customers[i % 3]! } })))
    await secondClient
      .queue('sync')
      .enqueueMany(Array.from({ length: 60 }, (_, i) => ({ job: 'syncCustomer', payload: { customerId: customers[i % 3]! } })))
    await waitUntil(
      () => statusCount('syncCustomer', 'completed'),
      (n) => n === 120,
    )
    expect(Math.max(...recorder.most.values())).toBeLessThanOrEqual(2)
    // The limit, not a lack of workers, is what held each key: 12 slots, 3 keys.
    expect([...recorder.most.values()]).toEqual([2, 2, 2])
    const { rows } = await env.db.query<{ concurrency_key: string }>(
      `SELECT DISTINCT concurrency_key FROM stackshift.runs WHERE job = 'syncCustomer' ORDER BY 1`,
    )
    expect(rows.map((row) => row.concurrency_key)).toEqual(customers)
  } finally {
    await Promise.all(workers.map((worker) => worker.stop()))
    extraClient.close()
  }
})

it('a rate limit of 5 per second: no one-second window holds more than 5 starts, and runs beyond it wait rather than drop', async () => {
  env.stackshift.job('callApi', { rateLimit: { limit: 5, period: '1s' } }, () => 'called')
  await env.startWorker({ queues: ['api'], jobs: ['callApi'], concurrency: 20 })
  await env.stackshift.queue('api').enqueueMany(Array.from({ length: 14 }, (_, i) => ({ job: 'callApi', payload: { i } })))
  await waitUntil(
    () => statusCount('callApi', 'completed'),
    (n) => n === 14,
  )
  // Every window [start, start + 1 s) counted on the server's recorded start instants (microseconds).
  const { rows } = await env.db.query<{ most: number; span_ms: number }>(
    `SELECT max((SELECT count(*) FROM stackshift.runs AS b
                 WHERE b.job = 'callApi' AND b.started_at >= a.started_at AND b.started_at < a.started_at + interval '1 second'))::int AS most,
            (extract(epoch FROM max(started_at) - min(started_at)) * 1000)::float8 AS span_ms
     FROM stackshift.runs AS a WHERE a.job = 'callApi'`,
  )
  expect(rows[0]!.most).toBe(5)
  // 14 starts at 5 a second need two more windows after the first.
  expect(rows[0]!.span_ms).toBeGreaterThanOrEqual(2000)
})

it('debounce: 10 enqueues within the period give one run, with the last payload', async () => {
  const seen: number[] = []
  // An enqueue-only service configures the job; the worker declares nothing.
  await env.stackshift.configureJob('recompute', { debounce: { period: '5s', key: 'customerId' } })
  const ids: string[] = []
  for (let n = 0; n < 10; n++) ids.push((await env.stackshift.queue('debounced').enqueue('recompute', { customerId: 'acme', n })).id)
  const other = await env.stackshift.queue('debounced').enqueue('recompute', { customerId: 'globex', n: 100 })
  expect(new Set(ids).size).toBe(1)
  expect(other.id).not.toBe(ids[0])
  const pending = await env.stackshift.getRun(ids[0]!)
  expect(pending.payload).toEqual({ customerId: 'acme', n: 9 })
  expect(pending.availableAt!.getTime() - Date.now()).toBeGreaterThan(3000)

  env.stackshift.job<{ n: number }>('recompute', ({ payload }) => void seen.push(payload.n))
  await env.startWorker({ queues: ['debounced'], jobs: ['recompute'], concurrency: 5 })
  // The period passes: move the pending runs' start into the past, and wake the timers with a run due at once.
  await env.db.query(`UPDATE stackshift.runs SET available_at = now() WHERE job = 'recompute' AND status = 'scheduled'`)
  await env.stackshift.queue('nudges').enqueue('nudge', {}, { delay: 1 })
  const done = await env.stackshift.waitForRun(ids[0]!)
  await env.stackshift.waitForRun(other.id)
  expect(done.status).toBe('completed')
  expect(seen.sort((a, b) => a - b)).toEqual([9, 100])
  expect(await statusCount('recompute', 'completed')).toBe(2)
})

it('fairness: with 1,000 runs of key A queued before 10 of key B, B’s runs start within the first 20 starts', async () => {
  const started: string[] = []
  env.stackshift.job<{ customerId: string }>('fairSync', { fairness: { key: 'customerId' } }, ({ payload }) => {
    started.push(payload.customerId)
  })
  const queue = env.stackshift.queue('fair')
  // The policy is stored by a worker's hello: start one on another queue first, so the runs are keyed at enqueue.
  await env.startWorker({ queues: ['elsewhere'], jobs: ['fairSync'], concurrency: 1 })
  await queue.enqueueMany(Array.from({ length: 1000 }, () => ({ job: 'fairSync', payload: { customerId: 'A' } })))
  await queue.enqueueMany(Array.from({ length: 10 }, () => ({ job: 'fairSync', payload: { customerId: 'B' } })))
  await env.startWorker({ queues: ['fair'], jobs: ['fairSync'], concurrency: 1 })
  await waitUntil(
    () => started.length,
    (n) => n === 1010,
  )
  const firstB = started.slice(0, 20).filter((key) => key === 'B').length
  expect(firstB).toBe(10)
})

it('changing a limit at run time takes effect without a restart, and getRun says what a held run waits for', async () => {
  const recorder = new ConcurrencyRecorder()
  const release = gate()
  env.stackshift.job('report', { concurrency: { limit: 1 } }, async () => {
    recorder.enter('all')
    await release.opened
    recorder.leave('all')
  })
  await env.startWorker({ queues: ['reports'], jobs: ['report'], concurrency: 10 })
  const runs = await env.stackshift.queue('reports').enqueueMany(Array.from({ length: 6 }, (_, i) => ({ job: 'report', payload: { i } })))
  await waitUntil(
    () => recorder.total,
    (n) => n === 1,
  )
  const held = (await Promise.all(runs.map((run) => env.stackshift.getRun(run.id)))).filter((run) => run.status === 'queued')
  expect(held).toHaveLength(5)
  expect(held[0]!.flowWait).toMatchObject({ limit: 'concurrency', key: '', used: 1, max: 1 })
  expect(held[0]!.flowWait!.description).toBe('waiting for concurrency: 1 of 1 running')

  const changed = await env.stackshift.configureJob('report', { concurrency: { limit: 3 } })
  expect(changed.version).toBe(2)
  await waitUntil(
    () => recorder.total,
    (n) => n === 3,
  )
  release.open()
  await waitUntil(
    () => statusCount('report', 'completed'),
    (n) => n === 6,
  )
  expect(recorder.mostTotal).toBe(3)
})

it('a sleeping run holds no slot: the next run of its key starts while it sleeps', async () => {
  env.stackshift.job<{ n: number }>('napThenWork', { concurrency: { limit: 1, key: 'account.id' } }, async ({ payload, step }) => {
    if (payload.n === 0) await step.sleep('nap', '1h')
    return payload.n
  })
  await env.startWorker({ queues: ['naps'], jobs: ['napThenWork'], concurrency: 5 })
  const sleeper = await env.stackshift.queue('naps').enqueue('napThenWork', { n: 0, account: { id: 'a1' } })
  await waitUntil(
    async () => (await env.stackshift.getRun(sleeper.id)).status,
    (status) => status === 'waiting',
  )
  const next = await env.stackshift.queue('naps').enqueue('napThenWork', { n: 1, account: { id: 'a1' } })
  expect((await env.stackshift.waitForRun(next.id)).status).toBe('completed')
  const asleep = await env.stackshift.getRun(sleeper.id)
  expect(asleep.status).toBe('waiting')
  expect(asleep.concurrencyKey).toBe('a1')
})

it('a cancelled run frees its slot at once: the run waiting for it starts', async () => {
  env.stackshift.job<{ n: number }>('blocker', { concurrency: { limit: 1, key: 'tenant' } }, async ({ payload, signal }) => {
    if (payload.n === 0) await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
    return payload.n
  })
  await env.startWorker({ queues: ['blocking'], jobs: ['blocker'], concurrency: 5 })
  const first = await env.stackshift.queue('blocking').enqueue('blocker', { n: 0, tenant: 't1' })
  await waitUntil(
    async () => (await env.stackshift.getRun(first.id)).status,
    (status) => status === 'running',
  )
  const second = await env.stackshift.queue('blocking').enqueue('blocker', { n: 1, tenant: 't1' })
  const waiting = await waitUntil(
    () => env.stackshift.getRun(second.id),
    (run) => run.flowWait !== undefined,
  )
  expect(waiting.flowWait!.description).toBe('waiting for concurrency tenant=t1: 1 of 1 running')
  await env.stackshift.cancelRun(first.id)
  expect((await env.stackshift.waitForRun(second.id)).status).toBe('completed')
})

it('an expired lease frees its slot: the run waiting for it starts while the silent attempt still runs', async () => {
  const release = gate()
  env.stackshift.job<{ n: number }>('stuck', { concurrency: { limit: 1, key: 'tenant' } }, async ({ payload }) => {
    if (payload.n === 0) await release.opened
    return payload.n
  })
  await env.startWorker({ queues: ['stuck'], jobs: ['stuck'], concurrency: 5 })
  const first = await env.stackshift.queue('stuck').enqueue('stuck', { n: 0, tenant: 't1' }, { maxAttempts: 1 })
  await waitUntil(
    async () => (await env.stackshift.getRun(first.id)).status,
    (status) => status === 'running',
  )
  const second = await env.stackshift.queue('stuck').enqueue('stuck', { n: 1, tenant: 't1' })
  expect((await env.stackshift.getRun(second.id)).status).toBe('queued')
  // The worker goes silent: its lease runs out (moved into the past, not waited for).
  await env.db.query(`UPDATE stackshift.runs SET lease_expires_at = now() - interval '1 second' WHERE id = $1`, [first.id])
  expect((await env.stackshift.waitForRun(second.id)).status).toBe('completed')
  release.open()
  expect((await env.stackshift.waitForRun(first.id)).status).toBe('failed')
})

it('a queue-wide concurrency limit holds across every job of the queue', async () => {
  const recorder = new ConcurrencyRecorder()
  const work = async () => {
    recorder.enter('queue')
    await new Promise((resolve) => setTimeout(resolve, 10))
    recorder.leave('queue')
  }
  env.stackshift.job('thumbnail', work)
  env.stackshift.job('transcode', work)
  const queue = env.stackshift.queue('media')
  const configured = await queue.configure({ concurrency: 2 })
  expect(configured).toMatchObject({ queue: 'media', policies: { concurrency: 2 }, version: 1 })
  await env.startWorker({ queues: ['media'], jobs: ['thumbnail', 'transcode'], concurrency: 10 })
  await queue.enqueueMany(Array.from({ length: 30 }, (_, i) => ({ job: i % 2 === 0 ? 'thumbnail' : 'transcode', payload: { i } })))
  await waitUntil(
    async () => (await statusCount('thumbnail', 'completed')) + (await statusCount('transcode', 'completed')),
    (n) => n === 30,
  )
  expect(recorder.mostTotal).toBe(2)
  await queue.configure({ concurrency: 0 })
})

it('bad policies are refused with INVALID_ARGUMENT naming the field, and nothing is stored', async () => {
  const refusal = (promise: Promise<unknown>) =>
    promise.then(
      () => undefined,
      (error: unknown) => error,
    )
  const cases: Array<[Parameters<StackShift['configureJob']>[1], string]> = [
    [{ concurrency: { limit: 0 } }, 'policies.concurrency.limit'],
    [{ concurrency: { limit: 2, key: 'account..id' } }, 'policies.concurrency.key'],
    [{ rateLimit: { limit: 5, period: 0 } }, 'policies.rate_limit.period_ms'],
    [{ fairness: { key: '' } }, 'policies.fairness.key'],
    [{ concurrency: { limit: 1, key: 'a' }, fairness: { key: 'b' } }, 'policies.fairness.key'],
  ]
  for (const [policies, field] of cases) {
    const error = await refusal(env.stackshift.configureJob('badly', policies))
    expect(error).toBeInstanceOf(InvalidArgumentError)
    expect((error as Error).message).toContain(field)
  }
  // A period the SDK cannot read is refused before it is sent.
  const period = await refusal(env.stackshift.configureJob('badly', { rateLimit: { limit: 5, period: '1 fortnight' } }))
  expect((period as Error).message).toContain('policies.rateLimit.period')
  const negative = await refusal(env.stackshift.configureJob('badly', { concurrency: { limit: -1 } }))
  expect((negative as Error).message).toContain('policies.concurrency.limit')
  expect((await env.stackshift.getJob('badly')).version).toBe(0)

  // A worker declaring bad policies is refused when it connects.
  const client = new StackShift({ address: env.server.address })
  client.job('badWorkerJob', { concurrency: { limit: 0 } }, () => null)
  const started = await refusal(client.worker({ queues: ['bad'], concurrency: 1 }).start())
  expect((started as Error).message).toContain('hello.job_policies[0].policies.concurrency.limit')
  expect((await env.stackshift.getJob('badWorkerJob')).version).toBe(0)
  client.close()
})

it('job(name, handler) works unchanged: its runs carry no key and bypass the flow claim', async () => {
  env.stackshift.job<{ n: number }>('plain', ({ payload }) => payload.n * 2)
  await env.startWorker({ queues: ['plain'], concurrency: 2 })
  const run = await env.stackshift.queue('plain').enqueue('plain', { n: 21 })
  const done = await env.stackshift.waitForRun(run.id)
  expect(done).toMatchObject({ status: 'completed', result: 42, concurrencyKey: undefined, flowWait: undefined })
  expect((await env.stackshift.getJob('plain')).version).toBe(0)
})

it('a rerun of a run under flow control keeps its key value and is claimed within the limit', async () => {
  env.stackshift.job<{ tenant: string }>('rerunnable', { concurrency: { limit: 1, key: 'tenant' } }, ({ payload }) => payload.tenant)
  await env.startWorker({ queues: ['reruns'], jobs: ['rerunnable'], concurrency: 2 })
  const source = await env.stackshift.queue('reruns').enqueue('rerunnable', { tenant: 't9' })
  await env.stackshift.waitForRun(source.id)
  const copy = await env.stackshift.rerunRun(source.id)
  const done = await env.stackshift.waitForRun(copy.id)
  expect(done).toMatchObject({ status: 'completed', result: 't9', concurrencyKey: 't9' })
})

it('runs stored before their job gets a policy are put under it, and complete within the new limit', async () => {
  const recorder = new ConcurrencyRecorder()
  const runs = await env.stackshift
    .queue('late')
    .enqueueMany(Array.from({ length: 8 }, (_, i) => ({ job: 'latePolicy', payload: { i, region: i % 2 === 0 ? 'eu' : 'us' } })))
  await env.stackshift.configureJob('latePolicy', { concurrency: { limit: 1, key: 'region' } })
  env.stackshift.job<{ region: string }>('latePolicy', async ({ payload }) => {
    recorder.enter(payload.region)
    await new Promise((resolve) => setTimeout(resolve, 10))
    recorder.leave(payload.region)
  })
  await env.startWorker({ queues: ['late'], jobs: ['latePolicy'], concurrency: 8 })
  const done = await Promise.all(runs.map((run) => env.stackshift.waitForRun(run.id)))
  expect(done.every((run) => run.status === 'completed')).toBe(true)
  expect(new Set(done.map((run) => run.concurrencyKey))).toEqual(new Set(['eu', 'us']))
  expect([...recorder.most.values()]).toEqual([1, 1])
})

it('runs a schedule fires and child runs a parent starts get their key value and complete within the limit', async () => {
  const recorder = new ConcurrencyRecorder()
  env.stackshift.job<{ shop: string }>('limitedReport', { concurrency: { limit: 1, key: 'shop' } }, async ({ payload }) => {
    recorder.enter(payload.shop)
    await new Promise((resolve) => setTimeout(resolve, 10))
    recorder.leave(payload.shop)
    return payload.shop
  })
  env.stackshift.job('fanOutReports', async ({ step }) =>
    Promise.all(
      ['s1', 's1', 's2'].map((shop, i) =>
        step.invoke<string>(`report:${i}`, { job: 'limitedReport', queue: 'limited-reports', payload: { shop }, timeout: '1h' }),
      ),
    ),
  )
  await env.startWorker({ queues: ['limited-reports'], jobs: ['limitedReport', 'fanOutReports'], concurrency: 4 })

  await env.stackshift.schedules.create({
    id: 'limited-report',
    cron: '0 0 1 1 *',
    queue: 'limited-reports',
    job: 'limitedReport',
    payload: { shop: 's3' },
  })
  const scheduled = await env.stackshift.schedules.trigger('limited-report')
  const parent = await env.stackshift.queue('limited-reports').enqueue('fanOutReports', {})

  const [scheduledDone, parentDone] = await Promise.all([env.stackshift.waitForRun(scheduled.id), env.stackshift.waitForRun(parent.id)])
  expect(scheduledDone).toMatchObject({ status: 'completed', result: 's3', concurrencyKey: 's3' })
  expect(parentDone).toMatchObject({ status: 'completed', result: ['s1', 's1', 's2'] })
  expect(parentDone.children.map((child) => child.status)).toEqual(['completed', 'completed', 'completed'])
  const { rows } = await env.db.query<{ concurrency_key: string }>(
    `SELECT concurrency_key FROM stackshift.runs WHERE parent_run_id = $1 ORDER BY parent_step_id`,
    [parent.id],
  )
  expect(rows.map((row) => row.concurrency_key)).toEqual(['s1', 's1', 's2'])
  expect(Math.max(...recorder.most.values())).toBe(1)
})
