import type { Knex } from 'knex'
import { FailedPreconditionError, NotFoundError } from '../core/errors.js'
import { type ErrorInfo, type RunRecord, type StoredRunStatus, finishedStatuses, publicStatus } from '../core/run.js'
import { isUuid } from '../core/run-id.js'
import type { Executor } from '../db/database.js'
import { childRunLockDescendants } from '../db/queries/child-runs.js'
import { runCancel, runLockForCancel } from '../db/queries/cancellation.js'
import { type Logger, runLogFields } from '../logger.js'
import type { ServerMetrics } from '../observability/metrics.js'

/**
 * CancelRun. The run ends CANCELLED in the transaction that locks it, whatever
 * it was doing: a queued run is no longer claimable, a waiting run's timer and
 * registration go, and a running run's lease ends, so every later write of
 * that attempt is refused. The worker of a running run learns it through the
 * cancelled notice (see WorkerStreams) or, at the latest, its next heartbeat.
 * Its unfinished child runs (step.invoke), and theirs, are cancelled with it.
 */
export class RunCanceller {
  constructor(private readonly deps: { db: Knex; metrics: ServerMetrics; logger: Logger }) {}

  async cancel(params: { namespace: string; runId: string; reason: string }): Promise<RunRecord> {
    const { namespace, runId } = params
    const cancelled = await this.deps.db.transaction(async (trx) => {
      const ended = isUuid(runId)
        ? await cancelRunAndDescendants(trx, {
            namespace,
            runId,
            error: { name: 'CancelledError', message: params.reason || 'cancelled' },
          })
        : undefined
      if (!ended) throw new NotFoundError(`run ${runId} not found in namespace ${namespace}`)
      if ('finishedStatus' in ended) {
        throw new FailedPreconditionError(`run ${runId} is already ${ended.finishedStatus}; only unfinished runs can be cancelled`)
      }
      return ended
    })
    this.record(cancelled.run, params.reason)
    for (const descendant of cancelled.descendants) this.record(descendant, descendant.error?.message ?? '')
    return cancelled.run
  }

  /**
   * Cancels child runs whose parent stopped waiting for them (its wait timed
   * out), and their descendants; each in its own transaction. Children that
   * finished meanwhile are left as they are.
   */
  async cancelAbandoned(childRunIds: readonly string[]): Promise<void> {
    for (const runId of childRunIds) {
      const ended = await this.deps.db.transaction((trx) =>
        cancelRunAndDescendants(trx, {
          namespace: undefined,
          runId,
          error: { name: 'CancelledError', message: 'the parent run stopped waiting for it (step.invoke timed out)' },
        }),
      )
      if (!ended || 'finishedStatus' in ended) continue
      this.record(ended.run, 'parent timed out waiting')
      for (const descendant of ended.descendants) this.record(descendant, descendant.error?.message ?? '')
    }
  }

  private record(run: RunRecord, reason: string): void {
    this.deps.metrics.recordCancelled(run)
    this.deps.logger.info({ ...runLogFields({ ...run, attempt: run.attempts }), reason }, 'run cancelled')
  }
}

/**
 * Cancels a run and its unfinished descendants (child runs, theirs, ...) in
 * the caller's transaction. Undefined when there is no such run (in
 * `namespace`, when given); `finishedStatus` when it had already finished.
 *
 * Lock order: descendants (deepest first), then the run. A child that
 * finishes holds its own row and then locks its parent's (the trigger
 * function resume_parent), so taking the parent first could deadlock with
 * it; this way a cascade only ever waits for rows below those it holds. A
 * child started after the descendants were locked (the run suspended on it
 * in between) is locked after the run, the one exception; a deadlock there
 * aborts the cancel, which the caller may retry (ABORTED). The run is
 * cancelled first: its invoke steps stop waiting, so the children cancelled
 * next do not queue it again.
 */
export async function cancelRunAndDescendants(
  trx: Executor,
  params: { namespace: string | undefined; runId: string; error: ErrorInfo },
): Promise<{ run: RunRecord; descendants: RunRecord[] } | { finishedStatus: StoredRunStatus } | undefined> {
  const { runId } = params
  const lockedFirst = await childRunLockDescendants(trx, { runId })
  const status = await runLockForCancel(trx, { namespace: params.namespace, runId })
  if (!status) return undefined
  if (finishedStatuses.has(publicStatus(status))) return { finishedStatus: status }
  const run = await runCancel(trx, { runId, error: params.error, isRunning: status === 'running' })
  const lockedIds = new Set(lockedFirst.map((descendant) => descendant.id))
  const startedSince = (await childRunLockDescendants(trx, { runId })).filter((descendant) => !lockedIds.has(descendant.id))
  const descendants: RunRecord[] = []
  // Parents before their children, unlike the locks: a child cancelled before
  // its parent would complete the parent's step and queue it first.
  for (const descendant of [...[...lockedFirst].reverse(), ...startedSince]) {
    if (finishedStatuses.has(publicStatus(descendant.status))) continue
    const error = { name: 'CancelledError', message: `parent run ${descendant.parentRunId} was cancelled` }
    descendants.push(await runCancel(trx, { runId: descendant.id, error, isRunning: descendant.status === 'running' }))
  }
  return { run, descendants }
}
