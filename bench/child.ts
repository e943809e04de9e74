/**
 * One system running one workload, in its own process (started by run.ts
 * under Node 22). Protocol on stdio, one JSON object per line: it prints
 * {"event":"ready"} once installed, waits for "go" on stdin, runs the
 * workload, prints {"event":"result",...}, waits for "stop", closes and exits.
 * It keeps its connections open until "stop", so that its shutdown stays out
 * of the CPU time the harness reads after the result.
 *
 * With a third argument `preload` it only installs, loads W4's history and
 * exits: the history is loaded by a process of its own, so the measured one
 * starts as W1's does. A process that sat idle through the load had its heap
 * shrunk by V8's memory reducer and paid for it in collections during the
 * drain (the worker's CPU per run 18–20 µs against 14–15 with the reducer off).
 */
import { createInterface } from 'node:readline'
import { type BenchConfig, type SystemAdapter, noopJob, probeJob } from './systems/adapter.js'
import { createGraphileWorkerAdapter } from './systems/graphile-worker.js'
import { createPgBossAdapter } from './systems/pg-boss.js'
import { createStackShiftAdapter } from './systems/stackshift.js'
import { createTransportFloorAdapter } from './systems/transport-floor.js'
import { type LatencySummary, summarizeLatency } from './support/stats.js'
import { type WorkloadName, generousPolicy, perKeyPolicy, workloadSizes } from './workloads.js'

const [systemName, workload, phase] = process.argv.slice(2) as [string, WorkloadName, 'preload' | undefined]
const config = JSON.parse(process.env.BENCH_CONFIG!) as BenchConfig
const sizes = workloadSizes()

function createAdapter(): SystemAdapter {
  switch (systemName) {
    case 'stackshift':
    case 'stackshift-traced':
      return createStackShiftAdapter(config)
    case 'graphile-worker-default':
      return createGraphileWorkerAdapter(config, 'default')
    case 'graphile-worker-tuned':
      return createGraphileWorkerAdapter(config, 'tuned')
    case 'pg-boss-default':
      return createPgBossAdapter(config, 'default')
    case 'pg-boss-tuned':
      return createPgBossAdapter(config, 'tuned')
    case 'transport-floor':
      return createTransportFloorAdapter(config)
    default:
      throw new Error(`unknown system ${systemName}`)
  }
}

const send = (message: Record<string, unknown>) => process.stdout.write(JSON.stringify(message) + '\n')
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const now = () => performance.timeOrigin + performance.now()

/** Waits until `count` handlers ran and the database shows nothing left, or the cap passes. */
async function waitUntilFinished(adapter: SystemAdapter, executed: Promise<void>, deadline: number): Promise<boolean> {
  await Promise.race([executed, sleep(Math.max(0, deadline - now()))])
  while ((await adapter.unfinished()) > 0) {
    if (now() > deadline) return false
    await sleep(5)
  }
  return true
}

/**
 * W1, W1S, W1P, W4 and W5: bulk enqueue, then drain with one worker process.
 * With `policies` (W1P, W5) the job has them before the enqueue; W5's runs
 * are spread over `sizes.flowKeys` customers, in turn.
 */
async function drain(
  adapter: SystemAdapter,
  options: { isAnalyzedBeforeDrain: boolean; policies?: Record<string, unknown>; count: number; keys?: number },
): Promise<Record<string, unknown>> {
  const { count, keys } = options
  if (options.policies) await adapter.configurePolicies!(noopJob, options.policies)
  const enqueueStarted = now()
  for (let start = 0; start < count; start += sizes.bulkBatchSize) {
    const size = Math.min(sizes.bulkBatchSize, count - start)
    await adapter.enqueueBulk(
      noopJob,
      Array.from({ length: size }, (_, i) => (keys ? { i: start + i, customerId: `c${(start + i) % keys}` } : { i: start + i })),
    )
  }
  const isAnalyzedBeforeDrain = options.isAnalyzedBeforeDrain
  const enqueueSeconds = (now() - enqueueStarted) / 1000
  if (isAnalyzedBeforeDrain) {
    const { default: pg } = await import('pg')
    const client = new pg.Client({ connectionString: config.databaseUrl })
    await client.connect()
    await client.query('ANALYZE')
    await client.end()
  }

  let executed = 0
  let allExecuted!: () => void
  const everyRunExecuted = new Promise<void>((resolve) => (allExecuted = resolve))
  const drainStarted = now()
  await adapter.startWorker(noopJob, () => {
    if (++executed === count) allExecuted()
  })
  const isComplete = await waitUntilFinished(adapter, everyRunExecuted, drainStarted + sizes.drainCapSeconds * 1000)
  const drainSeconds = (now() - drainStarted) / 1000
  await adapter.stopWorker()
  const finished = isComplete ? count : count - (await adapter.unfinished())
  return {
    jobs: count,
    enqueuePerSecond: count / enqueueSeconds,
    drainPerSecond: finished / drainSeconds,
    isCapped: !isComplete,
  }
}

/**
 * W2 and W2W: enqueue-to-handler-start latency at open-loop arrival rates.
 * Each phase (the warm-up, then each rate) tags its jobs, so a late job of
 * one phase is never counted in the next.
 */
async function latency(adapter: SystemAdapter, warmupRuns: number): Promise<Record<string, unknown>> {
  let phase = 0
  /** Latencies of the current phase's jobs that have started. */
  const samples: number[] = []
  await adapter.startWorker(probeJob, (payload) => {
    if (payload.phase === phase && payload.enqueuedAt !== undefined) samples.push(now() - payload.enqueuedAt)
  })
  // Let the worker reach its idle state before the first arrival.
  await sleep(1000)
  let sent = 0
  /** Enqueues `total` jobs at `rate` per second, then waits (up to a minute) until they ran. */
  async function arrivals(rate: number, total: number): Promise<boolean> {
    phase++
    samples.length = 0
    const started = now()
    for (let i = 0; i < total; i++) {
      const wait = started + (i * 1000) / rate - now()
      if (wait > 0) await sleep(wait)
      // Open loop: arrivals follow the clock, not the completion of earlier enqueues.
      void adapter.enqueueOne(probeJob, { enqueuedAt: now(), phase })
      sent++
    }
    const deadline = now() + 60_000
    while (samples.length < total && now() < deadline) await sleep(20)
    return samples.length === total
  }
  const warmup = warmupRuns > 0 ? { warmupRuns, isWarmedUp: await arrivals(sizes.warmupRate, warmupRuns) } : {}
  const byRate: Record<string, LatencySummary> = {}
  for (const rate of sizes.latencyRates) {
    await arrivals(rate, rate * sizes.latencySeconds)
    byRate[String(rate)] = summarizeLatency(samples)
  }
  await adapter.stopWorker()
  return { jobs: sent, byRate, ...warmup }
}

/** W3 and W3P: jobs of three steps each (W3P: with `policies` on the job). */
async function steps(adapter: SystemAdapter, policies?: Record<string, unknown>): Promise<Record<string, unknown>> {
  const count = sizes.stepJobs
  if (policies) await adapter.configurePolicies!('threeSteps', policies)
  await adapter.enqueueThreeStepJobs(count)
  let done = 0
  let allDone!: () => void
  const everyJobDone = new Promise<void>((resolve) => (allDone = resolve))
  const started = now()
  await adapter.startThreeStepWorker(() => {
    if (++done === count) allDone()
  })
  const isComplete = await waitUntilFinished(adapter, everyJobDone, started + sizes.drainCapSeconds * 1000)
  const seconds = (now() - started) / 1000
  await adapter.stopWorker()
  return { jobs: count, stepExecutionsPerSecond: (3 * (isComplete ? count : done)) / seconds, isCapped: !isComplete }
}

const adapter = createAdapter()
await adapter.install()
if (phase === 'preload') {
  await adapter.preloadHistory(noopJob, sizes.historyRuns)
  await adapter.close()
  process.exit(0)
}
send({ event: 'ready' })
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
await nextLine('go')

const cpuBefore = process.cpuUsage()
async function runWorkload(): Promise<Record<string, unknown>> {
  switch (workload) {
    case 'W2':
    case 'W2W':
      return latency(adapter, workload === 'W2W' ? sizes.warmupRuns : 0)
    case 'W3':
      return steps(adapter)
    case 'W3P':
      return steps(adapter, generousPolicy)
    case 'W1P':
      return drain(adapter, { isAnalyzedBeforeDrain: false, policies: generousPolicy, count: sizes.drainRuns })
    case 'W5':
      return drain(adapter, { isAnalyzedBeforeDrain: false, policies: perKeyPolicy, count: sizes.flowRuns, keys: sizes.flowKeys })
    default:
      return drain(adapter, { isAnalyzedBeforeDrain: workload === 'W1S', count: sizes.drainRuns })
  }
}
const result = await runWorkload()
const cpu = process.cpuUsage(cpuBefore)
send({ event: 'result', result, cpuSeconds: (cpu.user + cpu.system) / 1e6 })
await nextLine('stop')
await adapter.close()
process.exit(0)

async function nextLine(expected: string): Promise<void> {
  for (let line = await lines.next(); !line.done; line = await lines.next()) if (line.value.trim() === expected) return
  throw new Error(`stdin ended before "${expected}"`)
}
