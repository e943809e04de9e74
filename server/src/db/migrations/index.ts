import type { Knex } from 'knex'
import * as runsAndSteps from './0001-runs-and-steps.js'
import * as leaseWhileRunning from './0002-lease-while-running.js'
import * as waitsAndEvents from './0003-waits-and-events.js'
import * as stateStore from './0004-state-store.js'
import * as traceContext from './0005-trace-context.js'
import * as claimOrderInServer from './0006-claim-order-in-server.js'

/**
 * The schema migrations, in order. Listed in code rather than discovered on
 * disk, so they work the same from TypeScript sources and from the build.
 * Never edit a migration that has shipped; add the next number.
 */
const migrations: ReadonlyArray<readonly [name: string, migration: Knex.Migration]> = [
  ['0001-runs-and-steps', runsAndSteps],
  ['0002-lease-while-running', leaseWhileRunning],
  ['0003-waits-and-events', waitsAndEvents],
  ['0004-state-store', stateStore],
  ['0005-trace-context', traceContext],
  ['0006-claim-order-in-server', claimOrderInServer],
]

/** A Knex migration source over the list above. */
export const migrationSource: Knex.MigrationSource<readonly [string, Knex.Migration]> = {
  getMigrations: async () => [...migrations],
  getMigrationName: ([name]) => name,
  getMigration: async ([, migration]) => migration,
}
