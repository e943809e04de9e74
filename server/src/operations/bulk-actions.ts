import { randomUUID } from 'node:crypto'
import type { Knex } from 'knex'
import type { BulkActionKind, BulkActionRecord, RunSelection } from '../core/bulk-action.js'
import { NotFoundError } from '../core/errors.js'
import type { RunRecord } from '../core/run.js'
import { isUuid, newRunId } from '../core/run-id.js'
import {
  bulkActionAdvance,
  bulkActionGet,
  bulkActionInsert,
  bulkActionList,
  bulkActionLockAt,
  bulkActionTake,
  runCountSelection,
  runSelectBatch,
} from '../db/queries/bulk-actions.js'
import { stepListForRun } from '../db/queries/run-reads.js'
import type { Logger } from '../logger.js'
import { PeriodicTask } from '../maintenance/periodic-task.js'
import type { ServerMetrics } from '../observability/metrics.js'
import { cancelRunAndDescendants } from './cancellation.js'
import { type PlannedCopy, type RunCopier, planReplay, planRerun } from './run-copies.js'

/** A bulk action as asked for. */
export interface NewBulkAction {
  namespace: string
  kind: BulkActionKind
  selection: RunSelection
  fromStepId: string
}

/**
 * Bulk cancel, rerun and replay by filter. Starting one stores it with its
 * selection and an id ceiling (runs created later, the action's own reruns
 * among them, are never selected); the work is done by whichever server
 * takes it: every server looks for untaken actions every `intervalMs`, and
 * the one that started it at once. The taker works through the runs newest
 * first in batches, one transaction each: the batch's cancels or copies and
 * the action's new cursor commit together, so a server that stops mid-way
 * loses nothing and repeats nothing; once its lease runs out another server
 * carries on from the cursor. A taker that lost its lease (stalled past it)
 * finds the cursor moved at its next batch and stops.
 */
export class BulkActions {
  private readonly task: PeriodicTask

  constructor(
    private readonly deps: {
      db: Knex
      copier: RunCopier
      metrics: ServerMetrics
      logger: Logger
      intervalMs: number
      batchSize: number
      leaseMs: number
    },
  ) {
    this.task = new PeriodicTask({ name: 'bulk actions', logger: deps.logger, intervalMs: deps.intervalMs, run: () => this.pass() })
  }

  start(): void {
    this.task.start()
  }

  stop(): Promise<void> {
    return this.task.stop()
  }

  /** Counts what an action would handle and skip, now; starts nothing. */
  dryRun(action: NewBulkAction): Promise<{ matched: number; skipped: number }> {
    return runCountSelection(this.deps.db, { ...action, idBelow: newRunId() })
  }

  /** Stores an action and starts working on it; returns it with the counts of a dry run taken as it started. */
  async begin(action: NewBulkAction): Promise<{ action: BulkActionRecord; matched: number; skipped: number }> {
    const idCeiling = newRunId()
    const counts = await runCountSelection(this.deps.db, { ...action, idBelow: idCeiling })
    const stored = await bulkActionInsert(this.deps.db, { ...action, id: randomUUID(), idCeiling })
    this.deps.logger.info(
      { bulkActionId: stored.id, namespace: stored.namespace, kind: stored.kind, matched: counts.matched },
      'bulk action started',
    )
    this.task.wakeWithin(0)
    return { action: stored, ...counts }
  }

  async get(namespace: string, id: string): Promise<BulkActionRecord> {
    const action = isUuid(id) ? await bulkActionGet(this.deps.db, { namespace, id }) : undefined
    if (!action) throw new NotFoundError(`bulk action ${id} not found in namespace ${namespace}`)
    return action
  }

  list(namespace: string, limit: number): Promise<BulkActionRecord[]> {
    return bulkActionList(this.deps.db, { namespace, limit })
  }

  /** Takes untaken actions one by one and works each to its end; then sleeps. */
  private async pass(): Promise<undefined> {
    for (;;) {
      const action = await bulkActionTake(this.deps.db, { leaseMs: this.deps.leaseMs })
      if (!action) return undefined
      await this.work(action)
    }
  }

  private async work(action: BulkActionRecord): Promise<void> {
    let cursor = action.cursor
    for (;;) {
      const batch = await this.deps.db.transaction(async (trx) => {
        if (!(await bulkActionLockAt(trx, { id: action.id, cursor }))) return undefined
        const runs = await runSelectBatch(trx, {
          namespace: action.namespace,
          selection: action.selection,
          idBelow: cursor ?? action.idCeiling,
          limit: this.deps.batchSize,
        })
        const outcome = await this.apply(trx, action, runs)
        const isFinished = runs.length < this.deps.batchSize
        const next = runs.at(-1)?.id ?? cursor
        await bulkActionAdvance(trx, { ...outcome.counts, id: action.id, cursor: next, isFinished, leaseMs: this.deps.leaseMs })
        return { ...outcome, next, isFinished }
      })
      if (!batch) {
        this.deps.logger.warn({ bulkActionId: action.id }, 'bulk action carried on by another server; leaving it')
        return
      }
      this.deps.copier.announce(batch.copies)
      for (const run of batch.cancelled) this.deps.metrics.recordCancelled(run)
      cursor = batch.next
      if (batch.isFinished) {
        this.deps.logger.info({ bulkActionId: action.id, kind: action.kind }, 'bulk action completed')
        return
      }
    }
  }

  /** Applies the action to one batch of runs, in the batch's transaction. */
  private async apply(
    trx: Knex.Transaction,
    action: BulkActionRecord,
    runs: readonly RunRecord[],
  ): Promise<{
    counts: { handled: number; skipped: number }
    copies: Array<Extract<PlannedCopy, { copy: unknown }>>
    cancelled: RunRecord[]
  }> {
    const copies: Array<Extract<PlannedCopy, { copy: unknown }>> = []
    const cancelled: RunRecord[] = []
    let skipped = 0
    for (const run of runs) {
      if (action.kind === 'cancel') {
        const error = { name: 'CancelledError', message: `cancelled by bulk action ${action.id}` }
        const ended = await cancelRunAndDescendants(trx, { namespace: action.namespace, runId: run.id, error })
        if (!ended || 'finishedStatus' in ended) skipped++
        else cancelled.push(ended.run, ...ended.descendants)
        continue
      }
      const planned =
        action.kind === 'rerun'
          ? planRerun(action.namespace, run, undefined)
          : planReplay(action.namespace, run, await stepListForRun(trx, { runId: run.id }), action.fromStepId)
      if ('skipReason' in planned) skipped++
      else copies.push(planned)
    }
    await this.deps.copier.insert(trx, copies)
    return { counts: { handled: runs.length - skipped, skipped }, copies, cancelled }
  }
}
