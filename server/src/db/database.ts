import knex, { type Knex } from 'knex'
import { migrationSource } from './migrations/index.js'

/** What every query function takes first: the pool, or a transaction from it. */
export type Executor = Knex | Knex.Transaction

/**
 * Runs one SQL statement with positional `?` bindings and returns its rows.
 * JavaScript arrays bind as PostgreSQL arrays (for unnest and ANY).
 */
export async function sql<Row = never>(db: Executor, text: string, bindings: readonly unknown[] = []): Promise<Row[]> {
  const result: { rows: Row[] } = await db.raw(text, bindings as readonly Knex.RawBinding[])
  return result.rows
}

/** Schema that holds every StackShift table, so it can share a database with an application. */
export const schemaName = 'stackshift'

/** Creates the connection pool. Queries take this (or a transaction from it) as their executor. */
export function createDatabase(options: { url: string; poolSize: number }): Knex {
  return knex({
    client: 'pg',
    connection: { connectionString: options.url, application_name: 'stackshift-server' },
    pool: { min: 0, max: options.poolSize },
    acquireConnectionTimeout: 10_000,
    migrations: { schemaName, tableName: 'migrations' },
  })
}

// Any fixed 64-bit number works: it only has to be the same for every server process.
const migrationLockKey = 0x5374_6b53_6866

/**
 * Brings the schema up to date. Several servers may start at once: a session
 * advisory lock serialises them, so one migrates and the others find nothing
 * left to do (Knex's own lock table would make them fail instead of wait).
 */
export async function migrateDatabase(db: Knex): Promise<void> {
  const connection = await db.client.acquireConnection()
  try {
    await connection.query('SELECT pg_advisory_lock($1)', [migrationLockKey])
    try {
      await connection.query(`CREATE SCHEMA IF NOT EXISTS ${schemaName}`)
      await db.migrate.latest({ migrationSource, schemaName, tableName: 'migrations' })
    } finally {
      await connection.query('SELECT pg_advisory_unlock($1)', [migrationLockKey])
    }
  } finally {
    await db.client.releaseConnection(connection)
  }
}
