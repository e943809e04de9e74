/**
 * `npm run bench`: StackShift against graphile-worker and pg-boss on one
 * PostgreSQL, one run at a time (never two systems at once), each run on a
 * fresh database, each workload three times.
 *
 * Repetitions are interleaved: each one runs every system's workloads in turn,
 * W4 right after W1. The machine's speed drifts over the hour a full run
 * takes; this way a slow spell lands on every system and workload alike
 * instead of on one cell, and W4's share of W1 compares two runs made minutes
 * apart.
 *
 * Usage: npm run bench -- [--workloads W1,W1S,W1P,W2,W2W,W3,W3P,W4,W5] [--systems a,b] [--repeat 3] [--concurrency 100]
 *
 * `--systems stackshift,stackshift-traced` measures what tracing costs: the
 * second runs the server and the worker with OpenTelemetry on, exporting every
 * span over OTLP to a sink in this process.
 *
 * `transport-floor` is not a job system: it runs W2 and W2W only, through a relay with
 * the same hops as a StackShift enqueue and nothing else (floor/relay.ts).
 *
 * StackShift runs with both of its opt-in tunings on (README "Tuning"), and the
 * report's header says so: its server with STACKSHIFT_BACKGROUND_THREADS=idle,
 * its client/worker process with the SDK's replaceAsyncResourceBind()
 * (systems/stackshift.ts). The transport floor's client calls that too.
 *
 * `npm run bench` starts this process with V8's memory reducer off. The process
 * allocates while it sets a run up and then sits idle while the run is
 * measured; a few seconds into that quiet, the memory reducer would run full
 * collections here (up to 20 ms of one core each on a 2-core machine), inside
 * the measured window and on the cores the measured processes share.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { cpus, totalmem } from 'node:os'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { type BenchConfig } from './systems/adapter.js'
import { postmasterPid, treeCpuSeconds } from './support/cpu.js'
import { ensureBenchNode } from './support/node22.js'
import { type BenchPostgres, startBenchPostgres } from './support/postgres.js'
import { type BenchEnvironment, writeReport, type RunRecord } from './support/report.js'
import { type WorkloadName, stackShiftOnlyWorkloads, workloadSizes } from './workloads.js'

const repoRoot = fileURLToPath(new URL('../..', import.meta.url))
const workDir = `${repoRoot}bench/.work`
const allSystems = ['stackshift', 'graphile-worker-default', 'graphile-worker-tuned', 'pg-boss-default', 'pg-boss-tuned', 'transport-floor']
const allWorkloads: WorkloadName[] = ['W1', 'W1S', 'W1P', 'W2', 'W2W', 'W3', 'W3P', 'W4', 'W5']

function option(name: string): string | undefined {
  const index = process.argv.indexOf(`--${name}`)
  return index >= 0 ? process.argv[index + 1] : undefined
}

const workloads = (option('workloads')?.split(',') ?? allWorkloads) as WorkloadName[]
const systems = option('systems')?.split(',') ?? allSystems
const repeat = Number(option('repeat') ?? 3)
const concurrency = Number(option('concurrency') ?? 100)
const poolSize = 10

/** With BENCH_PROFILE set, every process writes a CPU profile under bench/.work/profiles. */
function profileFlags(name: string): string[] {
  return process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${workDir}/profiles/${name}`] : []
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * A JSON line a child prints: child.ts's protocol ({"event":"ready"}, then
 * {"event":"result",...}), or the relay's {"event":"listening","port":n}, or a
 * line of the StackShift server's log. Only the fields the harness reads.
 */
interface ProtocolLine {
  event?: string
  /** A log line's message. */
  msg?: string
  /** The server's "helper threads lowered" line: the scheduling policy applied. */
  policy?: string
  /** The port the server or the relay listens on. */
  port?: number
  /** The "result" event's workload result, and the CPU seconds the child used for it. */
  result?: RunRecord['result']
  cpuSeconds?: number
}

/** Reads JSON lines from a child's stdout; other lines are ignored. */
function jsonLines(child: ChildProcess): AsyncIterator<ProtocolLine, undefined> {
  const lines = createInterface({ input: child.stdout! })
  const iterator = lines[Symbol.asyncIterator]()
  return {
    async next() {
      for (;;) {
        const line = await iterator.next()
        if (line.done) return { value: undefined, done: true }
        if (line.value.startsWith('{')) {
          try {
            // A line that starts with '{' and parses is an object.
            return { value: JSON.parse(line.value) as ProtocolLine, done: false }
          } catch {
            // not a protocol line
          }
        }
      }
    },
  }
}

async function nextEvent(events: AsyncIterator<ProtocolLine, undefined>, event: string, child: ChildProcess): Promise<ProtocolLine> {
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`process exited (${code}) before "${event}"`))),
  )
  for (;;) {
    const { value, done } = await Promise.race([events.next(), exited])
    if (done) throw new Error(`stream ended before "${event}"`)
    if (value.event === event) return value
  }
}

/** Accepts OTLP exports and drops them: the traced system's spans cost what exporting costs, with no collector to wait for. */
async function startOtlpSink(): Promise<string> {
  const sink = createServer((request, response) => {
    request.resume()
    request.on('end', () => response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end())
  })
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve))
  sink.unref()
  return `http://127.0.0.1:${(sink.address() as AddressInfo).port}`
}

const otlpEndpoint = systems.includes('stackshift-traced') ? await startOtlpSink() : undefined
const tracingEnv = (system: string): Record<string, string> =>
  system === 'stackshift-traced' ? { OTEL_EXPORTER_OTLP_ENDPOINT: otlpEndpoint! } : {}

/** What the header states StackShift and the floor ran with; startServer and the adapters apply it. */
const tuning = {
  StackShift:
    "server with `STACKSHIFT_BACKGROUND_THREADS=idle` (V8's helper threads at SCHED_IDLE), client/worker process with `replaceAsyncResourceBind()`",
  'transport floor': 'client process with `replaceAsyncResourceBind()`',
}

/** The StackShift server, or the transport floor's relay, in its own process. */
async function startServer(node: string, databaseUrl: string, system: string): Promise<{ process: ChildProcess; address: string }> {
  const isFloor = system === 'transport-floor'
  const script = isFloor ? 'bench/dist/floor/relay-server.js' : 'server/dist/main.js'
  const child = spawn(node, [...profileFlags('server'), script], {
    cwd: repoRoot,
    env: {
      ...process.env,
      ...tracingEnv(system),
      // The server's opt-in tuning (README "Tuning").
      ...(isFloor ? {} : { STACKSHIFT_BACKGROUND_THREADS: 'idle' }),
      DATABASE_URL: databaseUrl,
      STACKSHIFT_HOST: '127.0.0.1',
      STACKSHIFT_PORT: '0',
      STACKSHIFT_METRICS_HOST: '127.0.0.1',
      STACKSHIFT_METRICS_PORT: '0',
      STACKSHIFT_CONSOLE: 'off',
      STACKSHIFT_DB_POOL_SIZE: String(poolSize),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const events = jsonLines(child)
  let helperThreadPolicy: string | undefined
  for (;;) {
    const { value, done } = await events.next()
    if (done) throw new Error('server exited before listening')
    // Logged before it listens; without it the header would state a tuning the server did not apply.
    if (value.msg === 'helper threads lowered below the event loop thread') helperThreadPolicy = value.policy
    if (value.msg === 'StackShift server listening' || value.event === 'listening') {
      if (!isFloor && helperThreadPolicy !== 'SCHED_IDLE')
        throw new Error(
          `the StackShift server did not put its helper threads at SCHED_IDLE (${helperThreadPolicy ?? 'not lowered'}): is util-linux's chrt installed?`,
        )
      // Keep draining its log so it never blocks on a full pipe.
      void (async () => {
        while (!(await events.next()).done);
      })()
      return { process: child, address: `127.0.0.1:${value.port!}` }
    }
  }
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  await exited
}

/** Loads W4's finished runs from a process of its own (see child.ts), and waits for it to exit. */
async function preloadHistory(node: string, system: string, config: BenchConfig): Promise<void> {
  const loader = spawn(node, ['bench/dist/child.js', system, 'W4', 'preload'], {
    cwd: repoRoot,
    env: { ...process.env, BENCH_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  const [code, signal] = (await once(loader, 'exit')) as [number | null, NodeJS.Signals | null]
  if (code !== 0) throw new Error(`loading W4's history for ${system} failed (${signal ?? `exit code ${code}`})`)
}

async function runOnce(node: string, postgres: BenchPostgres, system: string, workload: WorkloadName, rep: number): Promise<RunRecord> {
  const databaseUrl = await postgres.createDatabase()
  const hasServer = system.startsWith('stackshift') || system === 'transport-floor'
  const server = hasServer ? await startServer(node, databaseUrl, system) : undefined
  const config: BenchConfig = { databaseUrl, concurrency, poolSize, stackshiftAddress: server?.address }
  let measured: ChildProcess | undefined
  try {
    if (workload === 'W4') await preloadHistory(node, system, config)
    // The README's setup itself (examples/tracing.ts, loaded through tsx).
    const tracingFlags = system === 'stackshift-traced' ? ['--import', 'tsx', '--import', './examples/tracing.ts'] : []
    const child = spawn(node, [...profileFlags(system), ...tracingFlags, 'bench/dist/child.js', system, workload], {
      cwd: repoRoot,
      env: { ...process.env, ...tracingEnv(system), BENCH_CONFIG: JSON.stringify(config) },
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    measured = child
    const events = jsonLines(child)
    await nextEvent(events, 'ready', child)
    // The setup's writes (W4's million finished runs, above all) are flushed
    // now, not by the checkpointer while the workload runs: every run starts
    // with no write-back owed by its setup.
    await postgres.checkpoint()
    // Statistics reach pg_stat_database within a second of a backend going idle.
    await sleep(1500)
    const pgPid = postmasterPid(postgres.clusterDir)
    const before = {
      commits: await postgres.commits(databaseUrl),
      pg: treeCpuSeconds(pgPid),
      server: server ? treeCpuSeconds(server.process.pid!) : 0,
    }
    child.stdin.write('go\n')
    const message = await nextEvent(events, 'result', child)
    const after = { pg: treeCpuSeconds(pgPid), server: server ? treeCpuSeconds(server.process.pid!) : 0 }
    child.stdin.write('stop\n')
    await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(undefined)))
    await sleep(1500)
    const commits = (await postgres.commits(databaseUrl)) - before.commits
    if (isStatementReport) await printStatements(databaseUrl)
    const result = message.result!
    const cpu = { postgres: after.pg - before.pg, server: after.server - before.server, worker: message.cpuSeconds! }
    return {
      system,
      workload,
      rep,
      result,
      commitsPerJob: commits / result.jobs,
      cpuSecondsPer1000Jobs: ((cpu.postgres + cpu.server + cpu.worker) / result.jobs) * 1000,
      cpuSeconds: cpu,
    }
  } finally {
    if (measured) await stopProcess(measured)
    if (server) await stopProcess(server.process)
    await postgres.dropDatabase(databaseUrl)
  }
}

async function printStatements(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  try {
    const { rows } = await client.query(
      `SELECT calls, rows, round(total_exec_time) AS exec_ms, round(mean_exec_time::numeric, 2) AS mean_ms,
         left(regexp_replace(query, '\\s+', ' ', 'g'), 100) AS query
       FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
       ORDER BY total_exec_time DESC LIMIT 8`,
    )
    console.table(rows)
    await client.query('SELECT pg_stat_statements_reset()')
  } finally {
    await client.end()
  }
}

/** W4 runs right after W1: its result is read as a share of W1's. */
function runOrder(selected: readonly WorkloadName[]): WorkloadName[] {
  if (!selected.includes('W1') || !selected.includes('W4')) return [...selected]
  const rest: WorkloadName[] = selected.filter((workload) => workload !== 'W4')
  rest.splice(rest.indexOf('W1') + 1, 0, 'W4')
  return rest
}

async function packageVersion(path: string): Promise<string> {
  const manifest = JSON.parse(await readFile(`${repoRoot}${path}`, 'utf8')) as { version: string }
  return manifest.version
}

/** The commit measured, marked when the work tree differs from it (results excepted), so a table can be traced to its code. */
function codeRevision(): string {
  const git = (args: string[]) => execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trim()
  try {
    const changed = git(['status', '--porcelain', '--', '.', ':!bench/results'])
    return `${git(['rev-parse', '--short', 'HEAD'])}${changed ? ' with uncommitted changes' : ''}`
  } catch {
    return 'unknown (not a git work tree)'
  }
}

const node = ensureBenchNode(workDir)
const nodeVersion = await new Promise<string>((resolve) => {
  const child = spawn(node, ['--version'])
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
  child.on('exit', () => resolve(out.trim()))
})
await mkdir(`${repoRoot}bench/results`, { recursive: true })
// BENCH_PG_STATS=1 loads pg_stat_statements and prints each run's busiest statements (diagnosis only: it costs a little).
const isStatementReport = Boolean(process.env.BENCH_PG_STATS)
const postgres = await startBenchPostgres(
  `${workDir}/cluster`,
  isStatementReport ? { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'all' } : {},
)
const environment: BenchEnvironment = {
  machine: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB`,
  node: nodeVersion,
  commit: codeRevision(),
  postgres: await postgres.describe(),
  versions: {
    stackshift: await packageVersion('sdk/package.json'),
    'graphile-worker': await packageVersion('node_modules/graphile-worker/package.json'),
    'pg-boss': await packageVersion('node_modules/pg-boss/package.json'),
  },
  concurrency,
  poolSize,
  tuning,
  sizes: workloadSizes(),
  repeat,
}
console.log(JSON.stringify(environment, null, 2))

const records: RunRecord[] = []
const orderedWorkloads = runOrder(workloads)
try {
  for (let rep = 1; rep <= repeat; rep++) {
    for (const system of systems) {
      for (const workload of orderedWorkloads) {
        if (system === 'transport-floor' && workload !== 'W2' && workload !== 'W2W') continue
        if (stackShiftOnlyWorkloads.has(workload) && !system.startsWith('stackshift')) continue
        const record = await runOnce(node, postgres, system, workload, rep)
        records.push(record)
        console.log(
          `${workload} ${system.padEnd(24)} #${rep}  ${JSON.stringify(record.result)}  commits/job ${record.commitsPerJob.toFixed(3)}  cpu-s/1000 ${record.cpuSecondsPer1000Jobs.toFixed(3)} (${Object.entries(
            record.cpuSeconds,
          )
            .map(([k, v]) => `${k} ${((v / record.result.jobs) * 1e6).toFixed(0)}µs`)
            .join(', ')} per job)`,
        )
      }
    }
  }
} finally {
  await postgres.stop()
}
const paths = await writeReport(`${repoRoot}bench/results`, environment, records)
console.log(`\nwritten: ${paths.join(', ')}`)
process.exit(0)
