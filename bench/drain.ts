/**
 * `npm run bench`: drains no-op runs through a server process and a worker,
 * and measures enqueue-to-handler-start latency at a steady arrival rate.
 *
 * PostgreSQL is the embedded one (or BENCH_DATABASE_URL) with fsync and
 * synchronous_commit on, as in production. The server runs in its own process;
 * this process enqueues and runs the worker.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import { StackShift } from '@stackshift/sdk'
import { createLogger, startEmbeddedPostgres } from '@stackshift/server'
import pg from 'pg'

const repoRoot = fileURLToPath(new URL('..', import.meta.url))
const drainRuns = Number(process.env.BENCH_RUNS ?? 20_000)
const enqueueBatchSize = 1000
const workerConcurrency = Number(process.env.BENCH_CONCURRENCY ?? 100)
const latencyRatePerSecond = Number(process.env.BENCH_LATENCY_RATE ?? 100)
const latencySeconds = Number(process.env.BENCH_LATENCY_SECONDS ?? 10)

async function main(): Promise<void> {
  const adminUrl = process.env.BENCH_DATABASE_URL ?? (await startBenchPostgres())
  const databaseUrl = await createDatabase(adminUrl)
  const db = new pg.Client({ connectionString: databaseUrl })
  await db.connect()
  const settings = await db.query(
    `SELECT current_setting('server_version') AS version, current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS synchronous_commit, current_setting('shared_buffers') AS shared_buffers`,
  )
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`)
  console.log(`postgres: ${JSON.stringify(settings.rows[0])}`)

  const { process: serverProcess, address } = await startServerProcess(databaseUrl)
  const stackshift = new StackShift({ address })
  try {
    await drain(stackshift, db)
    await latency(stackshift)
  } finally {
    stackshift.close()
    serverProcess.kill('SIGTERM')
    await db.end()
  }
  process.exit(0)
}

async function drain(stackshift: StackShift, db: pg.Client): Promise<void> {
  const queue = stackshift.queue('bench-drain')
  const enqueueStarted = performance.now()
  for (let start = 0; start < drainRuns; start += enqueueBatchSize) {
    const size = Math.min(enqueueBatchSize, drainRuns - start)
    await queue.enqueueMany(Array.from({ length: size }, (_, i) => ({ job: 'noop', payload: { i: start + i } })))
  }
  const enqueueSeconds = (performance.now() - enqueueStarted) / 1000

  stackshift.job('noop', () => {})
  const worker = stackshift.worker({ queues: ['bench-drain'], jobs: ['noop'], concurrency: workerConcurrency })
  const drainStarted = performance.now()
  await worker.start()
  for (;;) {
    const { rows } = await db.query(`SELECT count(*)::int AS n FROM stackshift.runs WHERE queue = 'bench-drain' AND status = 'completed'`)
    if (rows[0].n >= drainRuns) break
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const drainSeconds = (performance.now() - drainStarted) / 1000
  await worker.stop()
  console.log(`drain: ${drainRuns} runs, concurrency ${workerConcurrency}`)
  console.log(`  enqueue  ${Math.round(drainRuns / enqueueSeconds)} runs/s (batches of ${enqueueBatchSize})`)
  console.log(`  drain    ${Math.round(drainRuns / drainSeconds)} runs/s`)
}

async function latency(stackshift: StackShift): Promise<void> {
  const total = latencyRatePerSecond * latencySeconds
  const samples: number[] = []
  let done!: () => void
  const allStarted = new Promise<void>((resolve) => (done = resolve))
  stackshift.job<{ enqueuedAt: number }>('probe', ({ payload }) => {
    samples.push(performance.timeOrigin + performance.now() - payload.enqueuedAt)
    if (samples.length === total) done()
  })
  const worker = stackshift.worker({ queues: ['bench-latency'], jobs: ['probe'], concurrency: workerConcurrency })
  await worker.start()
  const queue = stackshift.queue('bench-latency')
  const intervalMs = 1000 / latencyRatePerSecond
  const started = performance.now()
  // Open loop: arrivals follow the clock, not the completion of earlier enqueues.
  for (let i = 0; i < total; i++) {
    const due = started + i * intervalMs
    const wait = due - performance.now()
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    void queue.enqueue('probe', { enqueuedAt: performance.timeOrigin + performance.now() })
  }
  await allStarted
  await worker.stop()
  samples.sort((a, b) => a - b)
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!.toFixed(2)
  console.log(`latency: enqueue -> handler start, ${latencyRatePerSecond} runs/s for ${latencySeconds} s`)
  console.log(`  p50 ${at(0.5)} ms  p90 ${at(0.9)} ms  p99 ${at(0.99)} ms  max ${samples.at(-1)!.toFixed(2)} ms`)
}

async function startBenchPostgres(): Promise<string> {
  const dataDir = `${repoRoot}bench/.work`
  await mkdir(dataDir, { recursive: true })
  const postgres = await startEmbeddedPostgres({
    dataDir,
    port: 0,
    logger: createLogger('warn'),
    settings: { fsync: 'on', synchronous_commit: 'on', max_connections: '200', shared_buffers: '256MB' },
  })
  process.on('exit', () => void postgres.stop())
  const url = new URL(postgres.url)
  url.pathname = '/postgres'
  return url.toString()
}

async function createDatabase(adminUrl: string): Promise<string> {
  const name = `stackshift_bench_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  await admin.end()
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return url.toString()
}

async function startServerProcess(databaseUrl: string): Promise<{ process: ChildProcess; address: string }> {
  const child = spawn(process.execPath, ['--conditions=@stackshift/source', '--import', 'tsx', 'server/src/main.ts'], {
    cwd: repoRoot,
    env: { ...process.env, DATABASE_URL: databaseUrl, STACKSHIFT_HOST: '127.0.0.1', STACKSHIFT_PORT: '0', STACKSHIFT_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const port = await new Promise<number>((resolve, reject) => {
    let buffer = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      const line = buffer.split('\n').find((l) => l.includes('StackShift server listening'))
      if (line) resolve(JSON.parse(line).port)
    })
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)))
  })
  return { process: child, address: `127.0.0.1:${port}` }
}

await main()
