/**
 * `npm run chaos`: faults under load, checked the way Jepsen checks queues.
 *
 * One embedded PostgreSQL (run with pg_ctl), two StackShift servers and three
 * worker processes, all real processes; a driver in this process enqueues
 * multi-step runs (steps with side effects recorded in a ledger table, a
 * sleep, an event wait, State Store increments) while faults are injected on
 * a schedule drawn from a seed: workers killed and stopped past their lease,
 * servers killed (also at failpoints after a commit), PostgreSQL restarted
 * and down for a while, LISTEN connections ended, a server's pool crowded.
 * Then everything drains and the tables are checked (checks.ts).
 *
 * Usage: npm run chaos -- [--minutes 20] [--seed S] [--profile long|short]
 *                         [--out file.json] [--keep] [--plan]
 *
 * --profile short is the test suite's: every kind of fault once, in about two
 * minutes (profile.ts). --plan prints the schedule and exits. The report goes
 * to bench/results/chaos-<date>.json (or --out); the exit code is 0 when
 * every check passed, 1 when one failed, 2 when the harness itself failed.
 * Logs of every process are kept in a temporary directory, which is deleted
 * after a passing run unless --keep.
 */
import { randomInt } from 'node:crypto'
import { createWriteStream, existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Logger } from '@stackshift/sdk'
import { findFreePort } from '@stackshift/server'
import { runChecks } from './checks.js'
import { type FaultRecord, injectFaults } from './faults.js'
import { createLedger } from './ledger.js'
import { ChaosPostgres } from './postgres.js'
import { ServerProcess, WorkerProcess, serverEntry, workerEntry } from './processes.js'
import { type Profile, longProfile, shortProfile } from './profile.js'
import { Random } from './random.js'
import { type ChaosReport, defaultReportPath, formatChecks, writeReport } from './report.js'
import { type Fault, type FaultKind, describeFault, faultKinds, planFaults, serverCount, serverOfWorker, workerCount } from './schedule.js'
import { Workload } from './workload.js'

const repoRoot = fileURLToPath(new URL('../..', import.meta.url))

interface Options {
  profile: Profile
  seed: number
  out: string | undefined
  isKeep: boolean
  isPlanOnly: boolean
}

function parseOptions(argv: readonly string[]): Options {
  const value = (name: string) => {
    const index = argv.indexOf(`--${name}`)
    return index >= 0 ? argv[index + 1] : undefined
  }
  const number = (name: string, fallback: number) => {
    const text = value(name)
    if (text === undefined) return fallback
    const parsed = Number(text)
    if (!Number.isFinite(parsed) || parsed < 0) throw new Error(`--${name} must be a non-negative number, got ${text}`)
    return parsed
  }
  const profileName = value('profile') ?? 'long'
  if (profileName !== 'long' && profileName !== 'short') throw new Error(`--profile must be long or short, got ${profileName}`)
  const minutes = number('minutes', 20)
  if (profileName === 'long' && minutes < 3)
    throw new Error('--minutes must be at least 3: the long profile holds PostgreSQL down for 45 s')
  return {
    profile: profileName === 'short' ? shortProfile() : longProfile(minutes),
    seed: Math.floor(number('seed', randomInt(1, 2 ** 31))),
    out: value('out'),
    isKeep: argv.includes('--keep'),
    isPlanOnly: argv.includes('--plan'),
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** What must be torn down whatever happens. */
interface Running {
  postgres?: ChaosPostgres
  servers: ServerProcess[]
  workers: WorkerProcess[]
  workload?: Workload
}

async function tearDown(running: Running): Promise<void> {
  running.workload?.close()
  await Promise.all([...running.workers.map((worker) => worker.destroy()), ...running.servers.map((server) => server.kill())])
  await running.postgres?.stopImmediately()
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2))
  const { profile, seed } = options
  const schedule = planFaults(profile, seed)
  const started = Date.now()
  const log = (line: string) => console.log(`[chaos +${((Date.now() - started) / 1000).toFixed(1)}s] ${line}`)
  log(`profile ${profile.name}, seed ${seed}, lease ${profile.leaseMs / 1000}s; ${schedule.length} faults planned:`)
  for (const fault of schedule) console.log(`  ${describeFault(fault)}`)
  if (options.isPlanOnly) return 0
  for (const entry of [serverEntry, workerEntry]) {
    if (!existsSync(entry)) throw new Error(`${entry} is missing: build first (npx tsc -b, or npm run chaos, which builds)`)
  }

  const runDir = await mkdtemp(join(tmpdir(), 'stackshift-chaos-'))
  const logDir = join(runDir, 'logs')
  await mkdir(logDir)
  const driverLog = createWriteStream(join(logDir, 'driver.log'))
  const sdkLogger: Logger = Object.fromEntries(
    (['debug', 'info', 'warn', 'error'] as const).map((level) => [
      level,
      (message: string, fields?: Record<string, unknown>) =>
        driverLog.write(JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...fields }) + '\n'),
    ]),
  ) as unknown as Logger
  const running: Running = { servers: [], workers: [] }
  let isPassed = false
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: stopping every process`)
    void tearDown(running).finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    log(`logs in ${logDir}`)
    const postgres = await ChaosPostgres.start(join(runDir, 'data'))
    running.postgres = postgres
    await postgres.withClient((client) => createLedger(client))
    log('PostgreSQL up (pg_ctl)')

    const serverEnv = {
      DATABASE_URL: postgres.url,
      STACKSHIFT_HOST: '127.0.0.1',
      STACKSHIFT_LEASE_MS: String(profile.leaseMs),
      // Short where they only slow the run down.
      STACKSHIFT_REAPER_INTERVAL_MS: '500',
      STACKSHIFT_POLL_INTERVAL_MS: '1000',
      STACKSHIFT_RETRY_BASE_MS: '200',
      STACKSHIFT_RETRY_MAX_MS: '2000',
      STACKSHIFT_SHUTDOWN_GRACE_MS: '2000',
      STACKSHIFT_METRICS: 'off',
      STACKSHIFT_LOG_LEVEL: 'info',
    }
    for (let index = 0; index < serverCount; index++) {
      running.servers.push(new ServerProcess(index, await findFreePort(), serverEnv, logDir))
    }
    await Promise.all(running.servers.map((server) => server.startUntilUp()))
    log(`servers up: ${running.servers.map((server) => server.address).join(', ')}`)
    for (let index = 0; index < workerCount; index++) {
      const address = running.servers[serverOfWorker(index)]!.address
      running.workers.push(
        new WorkerProcess(index, { CHAOS_ADDRESS: address, CHAOS_LEDGER_URL: postgres.url, CHAOS_CONCURRENCY: '8' }, logDir),
      )
    }
    await Promise.all(running.workers.map((worker) => worker.start()))
    log(
      `workers up: ${running.workers.map((worker) => `${worker.current!.workerId} -> server ${serverOfWorker(worker.index)}`).join(', ')}`,
    )

    const workload = new Workload({
      addresses: running.servers.map((server) => server.address),
      runsPerSecond: profile.runsPerSecond,
      waitSampleEvery: profile.waitSampleEvery,
      random: new Random(seed).fork(),
      logger: sdkLogger,
    })
    running.workload = workload
    const faultsStartedAt = Date.now()
    workload.start()
    const progress = setInterval(() => {
      const records = [...workload.records.values()]
      log(`progress: ${records.length} enqueued, ${records.filter((r) => r.runId !== undefined).length} acknowledged`)
    }, 30_000)
    let faults: FaultRecord[]
    let skipped: Fault[]
    try {
      ;({ records: faults, skipped } = await injectFaults({
        cluster: { postgres, servers: running.servers, workers: running.workers },
        faults: schedule,
        startedAt: faultsStartedAt,
        quietMs: profile.gapMs[0],
        // The short profile injects its whole list, however long it takes; the long one stops on time.
        endsAt: profile.faultPhaseMs > 0 ? faultsStartedAt + profile.faultPhaseMs : Number.POSITIVE_INFINITY,
        log,
        sdkLogger,
      }))
      await workload.stopEnqueueing()
    } finally {
      clearInterval(progress)
    }
    const faultsEndedAt = Date.now()
    log(`faults over; draining (up to ${profile.drainTimeoutMs / 1000}s)`)
    const deadline = faultsEndedAt + profile.drainTimeoutMs
    const isDrained = await drain(postgres, workload, deadline, log)
    const drainMs = Date.now() - faultsEndedAt
    await workload.settle(Math.min(deadline, Date.now() + 30_000))
    log(isDrained ? `drained in ${(drainMs / 1000).toFixed(1)}s; checking` : 'drain timed out; checking')

    const checks = await postgres.withClient((client) =>
      runChecks(client, {
        records: [...workload.records.values()],
        waits: workload.waits,
        workloadFailures: workload.failures,
        faults,
        incarnations: running.workers.flatMap((worker) => worker.incarnations),
        serverErrors: running.servers.flatMap((server) => server.errors),
        handlerErrors: running.workers.flatMap((worker) => worker.handlerErrors),
        isDrained,
        drainMs,
        requiredKinds: faultKinds,
      }),
    )
    isPassed = checks.every((c) => c.isPassed)
    const records = [...workload.records.values()]
    const faultCounts: Partial<Record<FaultKind, number>> = {}
    for (const record of faults) faultCounts[record.fault.kind] = (faultCounts[record.fault.kind] ?? 0) + 1
    const report: ChaosReport = {
      seed,
      profile,
      startedAt: new Date(faultsStartedAt).toISOString(),
      durationMs: Date.now() - faultsStartedAt,
      drainMs,
      faultCounts,
      schedule,
      skipped,
      faults,
      workload: {
        enqueued: records.length,
        acknowledged: records.filter((r) => r.runId !== undefined).length,
        enqueueCalls: records.reduce((sum, r) => sum + r.calls, 0),
        waitsSampled: workload.waits.length,
        failedCalls: Object.fromEntries(workload.failures),
        handlerErrors: countBy(running.workers.flatMap((worker) => worker.handlerErrors).map((error) => `${error.call} ${error.error}`)),
      },
      checks,
      isPassed,
      ...((!isPassed || options.isKeep) && { logDir }),
    }
    const out = options.out ?? defaultReportPath(repoRoot, new Date(faultsStartedAt))
    await writeReport(out, report)
    console.log(`\n${formatChecks(checks)}\n`)
    log(`${isPassed ? 'every check passed' : 'CHECKS FAILED'}; seed ${seed}; report ${out}`)
    if (!isPassed || options.isKeep) log(`logs kept in ${logDir}`)
  } finally {
    process.removeListener('SIGINT', onSignal)
    process.removeListener('SIGTERM', onSignal)
    await tearDown(running)
    driverLog.end()
    if (isPassed && !options.isKeep) {
      await running.postgres?.remove()
      await rm(runDir, { recursive: true, force: true })
    } else if (running.postgres) log(`PostgreSQL's files kept in ${running.postgres.clusterDir}`)
  }
  return isPassed ? 0 : 1
}

function countBy(names: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const name of names) counts[name] = (counts[name] ?? 0) + 1
  return counts
}

/**
 * Waits until every enqueue was acknowledged (or given up) and every
 * acknowledged run finished, or `deadline` passes. Returns whether it drained.
 */
async function drain(postgres: ChaosPostgres, workload: Workload, deadline: number, log: (line: string) => void): Promise<boolean> {
  let lastReport = 0
  while (Date.now() < deadline) {
    const records = [...workload.records.values()]
    const unacknowledged = records.filter((record) => record.runId === undefined).length
    const ids = records.flatMap((record) => (record.runId === undefined ? [] : [record.runId]))
    const unfinished = await postgres
      .withClient(async (client) => {
        const { rows } = await client.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM stackshift.runs WHERE id = ANY($1::uuid[]) AND status NOT IN ('completed', 'failed', 'cancelled')`,
          [ids],
        )
        return rows[0]!.n
      })
      .catch(() => Number.NaN)
    if (unacknowledged === 0 && unfinished === 0) return true
    if (Date.now() - lastReport > 10_000) {
      log(`draining: ${unfinished} runs unfinished, ${unacknowledged} enqueues unacknowledged`)
      lastReport = Date.now()
    }
    await sleep(1000)
  }
  return false
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error)
    process.exit(2)
  },
)
