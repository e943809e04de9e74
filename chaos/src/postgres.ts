import { spawn } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { type EmbeddedPostgresHandle, createLogger, startEmbeddedPostgres } from '@stackshift/server'
import pg from 'pg'

/**
 * Settings of the run's cluster. fsync off: the cluster is thrown away
 * afterwards and is only ever stopped cleanly (fast or smart), never crashed,
 * so nothing is lost by it; it spares the disk other work shares.
 */
const settings: Record<string, string> = { fsync: 'off', full_page_writes: 'off', max_connections: '300' }

/**
 * The run's PostgreSQL: created by startEmbeddedPostgres (initdb, the
 * `stackshift` database, running as `postgres` under root), then handed over
 * to pg_ctl, so that the faults can stop and start it as an operator would.
 */
export class ChaosPostgres {
  private constructor(
    private readonly control: EmbeddedPostgresHandle['control'],
    /** The `stackshift` database, as the superuser. */
    readonly url: string,
  ) {}

  static async start(dataDir: string): Promise<ChaosPostgres> {
    const embedded = await startEmbeddedPostgres({ dataDir, port: 0, logger: createLogger('warn'), settings })
    // The embedded start runs PostgreSQL as its child; from here on pg_ctl runs it, detached.
    await embedded.stop()
    const postgres = new ChaosPostgres(embedded.control, embedded.url)
    await postgres.start()
    return postgres
  }

  /** pg_ctl start, waiting until it accepts connections. */
  start(): Promise<void> {
    return this.pgCtl(['start', '-w', '-t', '120', '-l', this.logFile, '-o', this.postgresOptions()])
  }

  /** pg_ctl stop -m fast: open transactions roll back, sessions end. */
  stopFast(): Promise<void> {
    return this.pgCtl(['stop', '-w', '-t', '120', '-m', 'fast'])
  }

  /** pg_ctl restart -m fast. */
  restartFast(): Promise<void> {
    return this.pgCtl(['restart', '-w', '-t', '120', '-m', 'fast', '-l', this.logFile, '-o', this.postgresOptions()])
  }

  /** Stops the cluster at once, whatever it is doing (the end of a run); no error if it is not running. */
  async stopImmediately(): Promise<void> {
    await this.pgCtl(['stop', '-w', '-m', 'immediate']).catch(() => {})
  }

  /**
   * Deletes the cluster's files (the run is over and passed). As root they
   * are not under the run's directory, which holds only a link to them.
   */
  async remove(): Promise<void> {
    await rm(this.control.clusterDir, { recursive: true, force: true })
  }

  /** Where the cluster's files are (kept after a failed run, for a look). */
  get clusterDir(): string {
    return this.control.clusterDir
  }

  /**
   * Ends the LISTEN connection of every server (pg_terminate_backend), as a
   * network fault or an administrator would. Returns how many were ended.
   */
  async terminateListeners(): Promise<number> {
    return this.withClient(async (client) => {
      const { rows } = await client.query<{ ended: boolean }>(
        `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE application_name = 'stackshift-listener'`,
      )
      return rows.filter((row) => row.ended).length
    })
  }

  /** Runs `fn` on a connection of its own to the `stackshift` database, closed afterwards. */
  async withClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client({ connectionString: this.url, application_name: 'stackshift-chaos' })
    client.on('error', () => {})
    await client.connect()
    try {
      return await fn(client)
    } finally {
      await client.end().catch(() => {})
    }
  }

  /** PostgreSQL's own log, in the cluster directory (which belongs to the user PostgreSQL runs as). */
  get logFile(): string {
    return join(this.control.clusterDir, 'chaos-postgres.log')
  }

  private postgresOptions(): string {
    return [`-p ${this.control.port}`, ...Object.entries(settings).map(([key, value]) => `-c ${key}=${value}`)].join(' ')
  }

  private pgCtl(args: string[]): Promise<void> {
    const { binDir, clusterDir, account } = this.control
    const child = spawn(join(binDir, 'pg_ctl'), [...args, '-D', clusterDir], {
      // As root, pg_ctl (which refuses root) runs as the cluster's owner, from a directory it can enter.
      ...(account && { uid: account.uid, gid: account.gid, cwd: '/' }),
      env: { ...process.env, LC_MESSAGES: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
    return new Promise((resolve, reject) => {
      child.once('error', reject)
      child.once('close', (code) =>
        code === 0 ? resolve() : reject(new Error(`pg_ctl ${args[0]} exited with code ${code}: ${output.trim()}`)),
      )
    })
  }
}
