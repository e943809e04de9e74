import type { Knex } from 'knex'
import { stateDeleteExpired } from '../db/queries/state-entries.js'
import type { Logger } from '../logger.js'
import { PeriodicTask } from './periodic-task.js'

const deleteBatchSize = 1000

/**
 * Deletes expired State Store entries and locks in batches. Expired entries
 * are already invisible; this only reclaims their space.
 */
export class StateSweeper {
  private readonly task: PeriodicTask

  constructor(private readonly deps: { db: Knex; logger: Logger; intervalMs: number }) {
    this.task = new PeriodicTask({ name: 'state-sweeper', logger: deps.logger, intervalMs: deps.intervalMs, run: () => this.pass() })
  }

  start(): void {
    this.task.start()
  }

  stop(): Promise<void> {
    return this.task.stop()
  }

  private async pass(): Promise<number | undefined> {
    const deleted = await stateDeleteExpired(this.deps.db, { limit: deleteBatchSize })
    if (deleted > 0) this.deps.logger.debug({ count: deleted }, 'deleted expired state entries')
    // A full batch: more are due now.
    return deleted === deleteBatchSize ? 0 : undefined
  }
}
