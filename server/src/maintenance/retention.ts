import type { Knex } from 'knex'
import { runIdFloor } from '../core/run-id.js'
import { eventDeleteOld, runDeleteFinished } from '../db/queries/retention.js'
import type { Logger } from '../logger.js'
import { PeriodicTask } from './periodic-task.js'

const deleteBatchSize = 1000

/**
 * Deletes finished runs (with their steps and attempts), and events, once they
 * are older than the retention period. An event id can be sent again after its
 * event is deleted.
 */
export class RetentionSweeper {
  private readonly task: PeriodicTask

  constructor(private readonly deps: { db: Knex; logger: Logger; retentionMs: number; intervalMs: number }) {
    this.task = new PeriodicTask({ name: 'retention', logger: deps.logger, intervalMs: deps.intervalMs, run: () => this.pass() })
  }

  start(): void {
    if (this.deps.retentionMs > 0) this.task.start()
  }

  stop(): Promise<void> {
    return this.task.stop()
  }

  private async pass(): Promise<number | undefined> {
    // Runs created after the cut-off cannot have finished before it. The
    // process clock only bounds the scan; finished_at is compared on the
    // database clock.
    const idBelow = runIdFloor(Date.now() - this.deps.retentionMs + 60_000)
    const deleted = await runDeleteFinished(this.deps.db, { idBelow, retentionMs: this.deps.retentionMs, limit: deleteBatchSize })
    const deletedEvents = await eventDeleteOld(this.deps.db, { retentionMs: this.deps.retentionMs, limit: deleteBatchSize })
    if (deleted > 0) this.deps.logger.info({ count: deleted }, 'deleted finished runs past retention')
    if (deletedEvents > 0) this.deps.logger.info({ count: deletedEvents }, 'deleted events past retention')
    return deleted === deleteBatchSize || deletedEvents === deleteBatchSize ? 0 : undefined
  }
}
