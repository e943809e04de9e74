import type { Knex } from 'knex'
import * as runsAndSteps from './0001-runs-and-steps.js'
import * as leaseWhileRunning from './0002-lease-while-running.js'
import * as waitsAndEvents from './0003-waits-and-events.js'
import * as stateStore from './0004-state-store.js'
import * as traceContext from './0005-trace-context.js'
import * as claimOrderInServer from './0006-claim-order-in-server.js'
import * as claimRunsFromSource from './0007-claim-runs-from-source.js'
import * as claimsSizedByBytes from './0008-claims-sized-by-bytes.js'
import * as apiKeys from './0009-api-keys.js'
import * as operatorViews from './0010-operator-views.js'
import * as schedules from './0011-schedules.js'
import * as childRuns from './0012-child-runs.js'
import * as flowControl from './0013-flow-control.js'

/**
 * The schema migrations, in order. Listed in code rather than discovered on
 * disk, so they work the same from TypeScript sources and from the build.
 * Never change what a shipped migration does to the schema; add the next
 * number.
 *
 * A stored function has one source file under db/functions/. A migration
 * installs it from there with CREATE OR REPLACE; changing a function means
 * editing its file and adding a migration that installs it again (dropping
 * the old one first only when its result columns change). PL/pgSQL bodies
 * are checked when they run, not when they are created, so an earlier
 * migration installing today's source on a fresh database is harmless: the
 * last one wins.
 */
const migrations: ReadonlyArray<readonly [name: string, migration: Knex.Migration]> = [
  ['0001-runs-and-steps', runsAndSteps],
  ['0002-lease-while-running', leaseWhileRunning],
  ['0003-waits-and-events', waitsAndEvents],
  ['0004-state-store', stateStore],
  ['0005-trace-context', traceContext],
  ['0006-claim-order-in-server', claimOrderInServer],
  ['0007-claim-runs-from-source', claimRunsFromSource],
  ['0008-claims-sized-by-bytes', claimsSizedByBytes],
  ['0009-api-keys', apiKeys],
  ['0010-operator-views', operatorViews],
  ['0011-schedules', schedules],
  ['0012-child-runs', childRuns],
  ['0013-flow-control', flowControl],
]

/** A Knex migration source over the list above. */
export const migrationSource: Knex.MigrationSource<readonly [string, Knex.Migration]> = {
  getMigrations: () => Promise.resolve([...migrations]),
  getMigrationName: ([name]) => name,
  getMigration: ([, migration]) => Promise.resolve(migration),
}
