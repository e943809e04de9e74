import { createHash } from 'node:crypto'
import knex, { type Knex } from 'knex'
import type pg from 'pg'
import type { Logger } from '../logger.js'
import { migrationSource } from './migrations/index.js'

/** What every query function takes first: the pool, or a transaction from it. */
export type Executor = Knex | Knex.Transaction

/**
 * Knex types its client `any`; this is the part of it used here: it hands
 * out the pool's pg connections (a transaction's client, the transaction's
 * own connection).
 */
interface ConnectionSource {
  acquireConnection(): Promise<pg.PoolClient>
  releaseConnection(connection: pg.PoolClient): Promise<void>
}

function connectionsOf(db: Executor): ConnectionSource {
  return db.client as ConnectionSource
}

const statementNames = new Map<string, string>()

/** A stable name per statement text: the connection parses and plans it once, then reuses it. */
function statementName(text: string): string {
  let name = statementNames.get(text)
  if (!name) {
    name = `stackshift_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`
    statementNames.set(text, name)
  }
  return name
}

/**
 * Runs one SQL statement with `$n` parameters and returns its rows, as a
 * named prepared statement: each connection parses it once and PostgreSQL can
 * reuse its plan. JavaScript arrays bind as PostgreSQL arrays (for unnest and
 * ANY). Statements are written so that a generic plan is a good plan: a batch
 * of ids reaches its table through the primary key (`= ANY($n)`, or
 * runsOfBatch in queries/run-batch.ts when the batch is joined).
 */
export async function sql<Row = never>(db: Executor, text: string, values: readonly unknown[] = []): Promise<Row[]> {
  const connections = connectionsOf(db)
  const connection = await connections.acquireConnection()
  try {
    const result = await connection.query<Row & pg.QueryResultRow>({ name: statementName(text), text, values: values as unknown[] })
    return result.rows
  } finally {
    await connections.releaseConnection(connection)
  }
}

/** Schema that holds every StackShift table, so it can share a database with an application. */
export const schemaName = 'stackshift'

/**
 * Creates the connection pool. Queries take this (or a transaction from it) as their executor.
 *
 * `statementTimeoutMs` and `idleInTransactionTimeoutMs` (0 or absent: none)
 * are set on every connection as it opens (PostgreSQL's statement_timeout and
 * idle_in_transaction_session_timeout), so no statement and no forgotten
 * transaction can hold a connection, and the locks it took, for ever. A
 * statement cancelled by its timeout fails with SQLSTATE 57014
 * (isStatementTimeout in errors.ts).
 */
export function createDatabase(options: {
  url: string
  poolSize: number
  statementTimeoutMs?: number
  idleInTransactionTimeoutMs?: number
  /** Where Knex's own warnings go (a lost connection, say); default: the console, as Knex does. */
  logger?: Logger
}): Knex {
  const { logger } = options
  return knex({
    ...(logger && {
      log: {
        warn: (message: unknown) => logger.warn({ message }, 'database pool'),
        error: (message: unknown) => logger.error({ message }, 'database pool'),
        deprecate: (method: string, alternative: string) => logger.warn({ method, alternative }, 'database pool: deprecated'),
        debug: (message: unknown) => logger.debug({ message }, 'database pool'),
      },
    }),
    client: 'pg',
    connection: {
      connectionString: options.url,
      application_name: 'stackshift-server',
      // pg sends these as startup parameters; it leaves 0 and undefined out.
      statement_timeout: options.statementTimeoutMs,
      idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs,
    },
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
  const connections = connectionsOf(db)
  const connection = await connections.acquireConnection()
  try {
    await connection.query('SELECT pg_advisory_lock($1)', [migrationLockKey])
    try {
      // Checked first: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the
      // schema exists, and a least-privilege role owns only its schema (deploy/postgres).
      const existing = await connection.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schemaName])
      if (existing.rowCount === 0) await connection.query(`CREATE SCHEMA ${schemaName}`)
      await db.migrate.latest({ migrationSource, schemaName, tableName: 'migrations' })
    } finally {
      await connection.query('SELECT pg_advisory_unlock($1)', [migrationLockKey])
    }
  } finally {
    await connections.releaseConnection(connection)
  }
}
