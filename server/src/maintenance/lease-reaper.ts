import type { Knex } from 'knex'
import type { RetryBackoff } from '../core/retry-policy.js'
import { runLockExpiredLeases } from '../db/queries/attempt-endings.js'
import type { Logger } from '../logger.js'
import type { ServerMetrics } from '../observability/metrics.js'
import { endFailedAttempts } from '../operations/attempt-endings.js'
import type { ReadyAnnouncer } from '../operations/ready-announcer.js'
import { PeriodicTask } from './periodic-task.js'

const reapBatchSize = 500

/**
 * Returns runs whose lease expired to the queue. An expired lease is a failed
 * attempt ("lease expired"): the run is retried per its policy, or ends FAILED
 * when its attempts are used up, so a run that crashes every worker cannot
 * loop forever.
 */
export class LeaseReaper {
  private readonly task: PeriodicTask

  constructor(
    private readonly deps: {
      db: Knex
      logger: Logger
      announcer: ReadyAnnouncer
      backoff: RetryBackoff
      metrics: ServerMetrics
      intervalMs: number
    },
  ) {
    this.task = new PeriodicTask({ name: 'lease-reaper', logger: deps.logger, intervalMs: deps.intervalMs, run: () => this.pass() })
  }

  start(): void {
    this.task.start()
  }

  stop(): Promise<void> {
    return this.task.stop()
  }

  private async pass(): Promise<number | undefined> {
    const { expired, afterCommit } = await this.deps.db.transaction(async (trx) => {
      const locked = await runLockExpiredLeases(trx, { limit: reapBatchSize })
      const ending = await endFailedAttempts(
        trx,
        this.deps,
        locked.map((run) => ({
          run,
          outcome: 'lease_expired',
          error: { name: 'LeaseExpired', message: `lease expired: worker ${run.workerId ?? 'unknown'} stopped heartbeating` },
          isRetriable: true,
          requestedDelayMs: undefined,
          failedStep: undefined,
        })),
      )
      return { expired: locked, afterCommit: ending.afterCommit }
    })
    afterCommit()
    this.deps.metrics.recordLeasesExpired(expired)
    const reaped = expired.length
    if (reaped > 0) this.deps.logger.info({ count: reaped }, 'returned runs with expired leases to the queue')
    // A full batch means more may be waiting: go again at once.
    return reaped === reapBatchSize ? 0 : undefined
  }
}
