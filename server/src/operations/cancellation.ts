import type { Knex } from 'knex'
import { FailedPreconditionError, NotFoundError } from '../core/errors.js'
import { type RunRecord, finishedStatuses, publicStatus } from '../core/run.js'
import { isUuid } from '../core/run-id.js'
import { runCancel, runLockForCancel } from '../db/queries/cancellation.js'
import { type Logger, runLogFields } from '../logger.js'
import type { ServerMetrics } from '../observability/metrics.js'

/**
 * CancelRun. The run ends CANCELLED in the transaction that locks it, whatever
 * it was doing: a queued run is no longer claimable, a waiting run's timer and
 * registration go, and a running run's lease ends, so every later write of
 * that attempt is refused. The worker of a running run learns it through the
 * cancelled notice (see WorkerStreams) or, at the latest, its next heartbeat.
 */
export class RunCanceller {
  constructor(private readonly deps: { db: Knex; metrics: ServerMetrics; logger: Logger }) {}

  async cancel(params: { namespace: string; runId: string; reason: string }): Promise<RunRecord> {
    const { namespace, runId } = params
    const cancelled = await this.deps.db.transaction(async (trx) => {
      const status = isUuid(runId) ? await runLockForCancel(trx, { namespace, runId }) : undefined
      if (!status) throw new NotFoundError(`run ${runId} not found in namespace ${namespace}`)
      if (finishedStatuses.has(publicStatus(status))) {
        throw new FailedPreconditionError(`run ${runId} is already ${status}; only unfinished runs can be cancelled`)
      }
      const error = { name: 'CancelledError', message: params.reason || 'cancelled' }
      return runCancel(trx, { runId, error, isRunning: status === 'running' })
    })
    this.deps.metrics.recordCancelled(cancelled)
    this.deps.logger.info({ ...runLogFields({ ...cancelled, attempt: cancelled.attempts }), reason: params.reason }, 'run cancelled')
    return cancelled
  }
}
