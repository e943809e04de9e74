import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { createLogger, startEmbeddedPostgres } from '@stackshift/server'
import pg from 'pg'

/**
 * The one PostgreSQL every system runs on, with a fixed configuration:
 * durability on (fsync, synchronous_commit, full_page_writes), as in production.
 */
export const postgresSettings: Record<string, string> = {
  fsync: 'on',
  synchronous_commit: 'on',
  full_page_writes: 'on',
  shared_buffers: '256MB',
  max_connections: '300',
  max_wal_size: '2GB',
  checkpoint_timeout: '5min',
  autovacuum: 'on',
}

export interface BenchPostgres {
  adminUrl: string
  clusterDir: string
  /** A fresh, empty database; returns its URL. */
  createDatabase(): Promise<string>
  dropDatabase(url: string): Promise<void>
  /** Transactions committed in a database so far (pg_stat_database). */
  commits(url: string): Promise<number>
  /** Writes every dirty buffer to disk now (CHECKPOINT). */
  checkpoint(): Promise<void>
  /** The effective values of the fixed settings, and the server version. */
  describe(): Promise<Record<string, string>>
  stop(): Promise<void>
}

export async function startBenchPostgres(workDir: string, extraSettings: Record<string, string> = {}): Promise<BenchPostgres> {
  await mkdir(workDir, { recursive: true })
  const postgres = await startEmbeddedPostgres({
    dataDir: workDir,
    port: 0,
    logger: createLogger('warn'),
    settings: { ...postgresSettings, ...extraSettings },
  })
  const adminUrl = new URL(postgres.url)
  adminUrl.pathname = '/postgres'
  const admin = new pg.Client({ connectionString: adminUrl.toString() })
  await admin.connect()
  return {
    adminUrl: adminUrl.toString(),
    clusterDir: join(workDir, 'postgres'),
    async createDatabase() {
      const name = `bench_${randomBytes(5).toString('hex')}`
      await admin.query(`CREATE DATABASE ${name}`)
      if (extraSettings.shared_preload_libraries?.includes('pg_stat_statements')) {
        const client = new pg.Client({ connectionString: `${adminUrl.toString().replace(/\/postgres$/, '')}/${name}` })
        await client.connect()
        await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements')
        await client.end()
      }
      const url = new URL(adminUrl)
      url.pathname = `/${name}`
      return url.toString()
    },
    async dropDatabase(url) {
      await admin.query(`DROP DATABASE IF EXISTS ${new URL(url).pathname.slice(1)} WITH (FORCE)`)
    },
    async commits(url) {
      const { rows } = await admin.query<{ n: number }>('SELECT xact_commit::float8 AS n FROM pg_stat_database WHERE datname = $1', [
        new URL(url).pathname.slice(1),
      ])
      return rows[0]?.n ?? 0
    },
    async checkpoint() {
      await admin.query('CHECKPOINT')
    },
    async describe() {
      const { rows } = await admin.query<{ name: string; setting: string; unit: string | null }>(
        'SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1) ORDER BY name',
        [Object.keys(postgresSettings)],
      )
      const version = await admin.query<{ server_version: string }>('SHOW server_version')
      return {
        version: version.rows[0]!.server_version,
        ...Object.fromEntries(rows.map((row) => [row.name, row.unit ? `${row.setting} × ${row.unit}` : row.setting])),
      }
    },
    async stop() {
      await admin.end()
      await postgres.stop()
    },
  }
}
