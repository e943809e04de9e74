import { NonRetriableError, StackShift } from '@stackshift/sdk'
import { expect, it, vi } from 'vitest'
import { useTestEnvironment } from './support/environment.js'
import { scrapeMetrics } from './support/prometheus.js'
import { startTestServer } from './support/server.js'
import { waitUntil } from './support/wait-until.js'

const env = useTestEnvironment()

const scrape = () => scrapeMetrics(env.server.server.metricsPort!)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

it('counts runs enqueued, completed and failed by queue and job, and observes their start latency and step durations', async () => {
  const queue = 'metrics-outcomes'
  env.stackshift.job('resize', async ({ step }) => {
    await step.run('resize', async () => {
      await sleep(20)
      return 'resized'
    })
    return 'ok'
  })
  env.stackshift.job('parse', async ({ step }) => {
    await step.run('parse', async () => {
      await sleep(20)
      throw new NonRetriableError('not an image')
    })
  })
  const images = env.stackshift.queue(queue)
  const keyed = await images.enqueue('resize', { file: 'a.png' }, { idempotencyKey: 'a.png' })
  const repeated = await images.enqueue('resize', { file: 'a.png' }, { idempotencyKey: 'a.png' })
  expect(repeated).toMatchObject({ id: keyed.id, deduplicated: true })
  const batch = await images.enqueueMany([
    { job: 'resize', payload: { file: 'b.png' } },
    { job: 'resize', payload: { file: 'c.png' } },
    { job: 'parse', payload: { file: 'd.txt' } },
    { job: 'parse', payload: { file: 'e.txt' } },
  ])
  await env.startWorker({ queues: [queue], jobs: ['resize', 'parse'], concurrency: 5 })
  const finished = await Promise.all([keyed, ...batch].map((run) => env.stackshift.waitForRun(run.id)))
  expect(finished.map((run) => run.status)).toEqual(['completed', 'completed', 'completed', 'failed', 'failed'])

  const metrics = await scrape()
  const resize = { queue, job: 'resize' }
  const parse = { queue, job: 'parse' }
  // The deduplicated enqueue stored nothing and is not counted.
  expect(metrics.value('stackshift_runs_enqueued_total', resize)).toBe(3)
  expect(metrics.value('stackshift_runs_enqueued_total', parse)).toBe(2)
  expect(metrics.value('stackshift_runs_completed_total', resize)).toBe(3)
  expect(metrics.value('stackshift_runs_completed_total', parse)).toBeUndefined()
  expect(metrics.value('stackshift_runs_failed_total', parse)).toBe(2)
  expect(metrics.value('stackshift_runs_failed_total', resize)).toBeUndefined()
  expect(metrics.value('stackshift_run_start_latency_seconds_count', resize)).toBe(3)
  expect(metrics.value('stackshift_run_start_latency_seconds_count', parse)).toBe(2)

  const resized = { job: 'resize', outcome: 'completed' }
  const parsed = { job: 'parse', outcome: 'failed' }
  expect(metrics.value('stackshift_step_duration_seconds_count', resized)).toBe(3)
  expect(metrics.value('stackshift_step_duration_seconds_count', parsed)).toBe(2)
  expect(metrics.value('stackshift_step_duration_seconds_count', { job: 'resize', outcome: 'failed' })).toBeUndefined()
  // Every step slept 20 ms: in seconds, none fits the 10 ms bucket and all fit the 1 s one.
  for (const labels of [resized, parsed]) {
    expect(metrics.value('stackshift_step_duration_seconds_bucket', { ...labels, le: '0.01' })).toBe(0)
    expect(metrics.value('stackshift_step_duration_seconds_bucket', { ...labels, le: '1' })).toBe(labels === resized ? 3 : 2)
  }
  expect(metrics.value('stackshift_step_duration_seconds_sum', resized)).toBeGreaterThanOrEqual(3 * 0.015)
})

it('the start latency counts from when the run became ready, on the database clock', async () => {
  const queue = 'metrics-backlog'
  env.stackshift.job('catchUp', () => 'done')
  const runs = await env.stackshift.queue(queue).enqueueMany([
    { job: 'catchUp', payload: {} },
    { job: 'catchUp', payload: {} },
  ])
  // Ready for 100 s already: a backlog nobody worked on.
  await env.db.query(`UPDATE stackshift.runs SET available_at = available_at - interval '100 seconds' WHERE id = ANY($1)`, [
    runs.map((run) => run.id),
  ])
  await env.startWorker({ queues: [queue], jobs: ['catchUp'] })
  for (const run of runs) expect((await env.stackshift.waitForRun(run.id)).status).toBe('completed')

  const metrics = await scrape()
  const labels = { queue, job: 'catchUp' }
  expect(metrics.value('stackshift_run_start_latency_seconds_bucket', { ...labels, le: '60' })).toBe(0)
  expect(metrics.value('stackshift_run_start_latency_seconds_bucket', { ...labels, le: '120' })).toBe(2)
  expect(metrics.value('stackshift_run_start_latency_seconds_count', labels)).toBe(2)
})

it('a run handed to an idle worker as it is enqueued is observed once, like a claimed one', async () => {
  const queue = 'metrics-handoff'
  env.stackshift.job('instant', () => 'done')
  await env.startWorker({ queues: [queue], jobs: ['instant'] })
  await waitUntil(scrape, (metrics) => metrics.value('stackshift_workers_connected', { queue }) === 1)
  // A run is handed over only while the worker waits idle, which it does once a claim has
  // found nothing; one at a time, until one was. Each run, handed over or claimed, counts once.
  let enqueued = 0
  let handedOver = 0
  while (handedOver === 0 && enqueued < 20) {
    const { id } = await env.stackshift.queue(queue).enqueue('instant', {})
    enqueued++
    const done = await env.stackshift.waitForRun(id)
    expect(done.status).toBe('completed')
    // Inserted already leased: its attempt started in the statement that created it.
    if (done.startedAt!.getTime() === done.createdAt!.getTime()) handedOver++
  }
  expect(handedOver).toBe(1)
  const metrics = await scrape()
  expect(metrics.value('stackshift_run_start_latency_seconds_count', { queue, job: 'instant' })).toBe(enqueued)
  expect(metrics.value('stackshift_runs_completed_total', { queue, job: 'instant' })).toBe(enqueued)
})

it('queue depth counts ready, delayed, waiting and running runs per queue, and the worker gauges show the connected worker and its free slots', async () => {
  const queue = 'metrics-depth'
  let startHolding!: () => void
  const isHolding = new Promise<void>((resolve) => (startHolding = resolve))
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  env.stackshift.job('hold', async () => {
    startHolding()
    await released
  })
  env.stackshift.job('nap', async ({ step }) => {
    await step.sleep('nap', '1h')
  })
  env.stackshift.job('quick', () => 'done')
  const depthQueue = env.stackshift.queue(queue)
  // A finished run counts in no state.
  const quick = await depthQueue.enqueue('quick', {})
  // 'later' has no worker: these wait to be claimed, or for their delay to pass.
  await depthQueue.enqueueMany(Array.from({ length: 4 }, () => ({ job: 'later', payload: {} })))
  await depthQueue.enqueueMany([
    { job: 'later', payload: {}, delay: '1h' },
    { job: 'later', payload: {}, delay: '1h' },
  ])
  // Delayed, but due by now: ready, whether or not the timer has promoted it yet.
  const due = await depthQueue.enqueue('later', {}, { delay: '1h' })
  await env.db.query(`UPDATE stackshift.runs SET available_at = now() - interval '1 second' WHERE id = $1`, [due.id])
  await depthQueue.enqueueMany([
    { job: 'nap', payload: {} },
    { job: 'nap', payload: {} },
  ])
  const worker = await env.startWorker({ queues: [queue], jobs: ['hold', 'nap', 'quick'], concurrency: 3, prefetch: 0 })
  expect((await env.stackshift.waitForRun(quick.id)).status).toBe('completed')
  const holding = await depthQueue.enqueue('hold', {})
  await isHolding

  const labels = (state: string) => ({ namespace: 'default', queue, state })
  const metrics = await waitUntil(
    scrape,
    (m) =>
      m.value('stackshift_queue_depth', labels('waiting')) === 2 &&
      m.value('stackshift_queue_depth', labels('running')) === 1 &&
      m.value('stackshift_worker_free_slots', { queue }) === 2,
  )
  expect(metrics.value('stackshift_queue_depth', labels('ready'))).toBe(5)
  expect(metrics.value('stackshift_queue_depth', labels('delayed'))).toBe(2)
  expect(metrics.value('stackshift_workers_connected', { namespace: 'default', queue })).toBe(1)

  release()
  expect((await env.stackshift.waitForRun(holding.id)).status).toBe('completed')
  await worker.stop()
  const afterStop = await waitUntil(scrape, (m) => m.value('stackshift_workers_connected', { queue }) === undefined)
  // The queue still has unfinished runs, so every state is reported, idle ones as 0.
  expect(afterStop.value('stackshift_queue_depth', labels('running'))).toBe(0)
  expect(afterStop.value('stackshift_queue_depth', labels('waiting'))).toBe(2)
  expect(afterStop.value('stackshift_worker_free_slots', { queue })).toBeUndefined()
})

it('a lease that runs out without a heartbeat is counted, and so is the run it fails', async () => {
  const queue = 'metrics-leases'
  const { run_id } = await env.raw.runs('Enqueue', { run: { queue, job: 'crash', max_attempts: 1 } })
  // A worker that claims and then goes silent.
  const { tasks } = await env.raw.workers('ClaimTask', { queues: [queue], jobs: ['crash'], lease_ms: 500 })
  expect(tasks.map((task) => task.run_id)).toEqual([run_id])

  const labels = { queue, job: 'crash' }
  const metrics = await waitUntil(scrape, (m) => m.value('stackshift_leases_expired_total', labels) === 1)
  const { rows } = await env.db.query<{ status: string }>(`SELECT status::text FROM stackshift.runs WHERE id = $1`, [run_id])
  expect(rows[0]!.status).toBe('failed')
  expect(metrics.value('stackshift_runs_failed_total', labels)).toBe(1)
  expect(metrics.value('stackshift_run_start_latency_seconds_count', labels)).toBe(1)
  expect(metrics.value('stackshift_step_duration_seconds_count', { job: 'crash' })).toBeUndefined()
})

it('a cancelled run is counted, and a queue with nothing left drops out of the depth', async () => {
  const queue = 'metrics-cancel'
  const run = await env.stackshift.queue(queue).enqueue('neverMind', {}, { delay: '1h' })
  expect((await scrape()).value('stackshift_queue_depth', { queue, state: 'delayed' })).toBe(1)
  await env.stackshift.cancelRun(run.id)
  const metrics = await scrape()
  expect(metrics.value('stackshift_runs_cancelled_total', { queue, job: 'neverMind' })).toBe(1)
  expect(metrics.value('stackshift_queue_depth', { queue, state: 'delayed' })).toBeUndefined()
})

it('the endpoint serves the Prometheus text format at /metrics only, with the Node.js process metrics', async () => {
  const metrics = await scrape()
  expect(metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/)
  expect(metrics.value('process_cpu_user_seconds_total')).toBeGreaterThan(0)
  expect(metrics.value('nodejs_heap_size_used_bytes')).toBeGreaterThan(0)
  const response = await fetch(`http://127.0.0.1:${env.server.server.metricsPort}/`)
  expect(response.status).toBe(404)
})

it('each server has its own metrics and port, stop() closes the endpoint, and metrics can be turned off', async () => {
  const other = await startTestServer(env.databaseUrl)
  let otherPort: number
  try {
    otherPort = other.server.metricsPort!
    expect(otherPort).not.toBe(env.server.server.metricsPort)
    const client = new StackShift({ address: other.address })
    await client.queue('metrics-elsewhere').enqueue('onOther', {})
    client.close()
    const labels = { queue: 'metrics-elsewhere', job: 'onOther' }
    expect((await scrapeMetrics(otherPort)).value('stackshift_runs_enqueued_total', labels)).toBe(1)
    const here = await scrape()
    expect(here.value('stackshift_runs_enqueued_total', labels)).toBeUndefined()
    // Depth comes from the shared database, so every server reports it.
    expect(here.value('stackshift_queue_depth', { queue: 'metrics-elsewhere', state: 'ready' })).toBe(1)
  } finally {
    await other.stop()
  }
  await expect(fetch(`http://127.0.0.1:${otherPort}/metrics`)).rejects.toThrow()

  // A metrics port that is taken fails the start, like a taken gRPC port.
  await expect(startTestServer(env.databaseUrl, { metricsPort: env.server.server.metricsPort! })).rejects.toThrow(/EADDRINUSE/)

  const silent = await startTestServer(env.databaseUrl, { isMetricsEnabled: false })
  try {
    expect(silent.server.metricsPort).toBeUndefined()
  } finally {
    await silent.stop()
  }
})

it('with a metrics token, a request without it gets 401 and nothing is collected; with it, the metrics', async () => {
  const token = 'scrape-token-0123456789'
  const guarded = await startTestServer(env.databaseUrl, { metricsToken: token })
  try {
    const port = guarded.server.metricsPort!
    const expose = vi.spyOn(guarded.server.metrics, 'expose')
    const refusedHeaders: Array<Record<string, string>> = [
      {},
      { authorization: 'Bearer wrong' },
      { authorization: `Bearer ${token}x` },
      { authorization: `Bearer ${token.slice(0, -1)}` },
      { authorization: token },
      { authorization: `Basic ${token}` },
    ]
    for (const headers of refusedHeaders) {
      const response = await fetch(`http://127.0.0.1:${port}/metrics`, { headers })
      expect(response.status).toBe(401)
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="metrics"')
      expect(await response.text()).not.toContain('stackshift_')
    }
    expect(expose).not.toHaveBeenCalled()

    const metrics = await scrapeMetrics(port, token)
    expect(metrics.value('process_cpu_user_seconds_total')).toBeGreaterThan(0)
    expect(expose).toHaveBeenCalledTimes(1)
  } finally {
    await guarded.stop()
  }
})
