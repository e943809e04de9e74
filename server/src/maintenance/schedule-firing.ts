import type { Knex } from 'knex'
import { type RunRecord, finishedStatuses, publicStatus } from '../core/run.js'
import { type TickPlan, planDueTicks } from '../core/schedule.js'
import { type CronSeries, CronSeriesCache } from '../core/schedule-ticks.js'
import { runCancel, runLockForCancel } from '../db/queries/cancellation.js'
import {
  type ScheduleAdvance,
  scheduleAdvance,
  scheduleNextDueInMs,
  scheduleTakeDue,
  scheduleUnfinishedRuns,
} from '../db/queries/schedules.js'
import type { Logger } from '../logger.js'
import type { ServerMetrics } from '../observability/metrics.js'
import type { FiredRun, ScheduleTickToFire, ScheduledRuns } from '../operations/schedules.js'
import { PeriodicTask } from './periodic-task.js'

/**
 * Most ticks of one schedule a pass handles in one batch: a frequent
 * schedule with a long catch-up window that was down a while catches up over
 * several batches rather than in one huge statement.
 */
const ticksPerScheduleMax = 1000

/**
 * Fires schedules' ticks. Every server runs this pass; each batch is one
 * transaction that locks up to `batchSize` due schedules (SKIP LOCKED, so
 * servers share them and never fire one twice), decides each one's due ticks
 * against its overlap policy and catch-up window (core/schedule.ts), cancels
 * what cancel_previous replaces, inserts all the batch's runs in one
 * statement and moves each schedule to its next tick in another. The runs'
 * idempotency keys and runs_by_schedule back the lock up: a tick never gets
 * two runs. The pass then sleeps until the next tick of any schedule, as the
 * database reports it, but at most `pollIntervalMs`: schedules created on
 * other servers are seen that soon, and so are buffered ticks whose run
 * ended.
 */
export class ScheduleFiring {
  private readonly task: PeriodicTask
  private readonly series = new CronSeriesCache()

  constructor(
    private readonly deps: {
      db: Knex
      runs: ScheduledRuns
      metrics: ServerMetrics
      logger: Logger
      pollIntervalMs: number
      batchSize: number
    },
  ) {
    this.task = new PeriodicTask({ name: 'schedules', logger: deps.logger, intervalMs: deps.pollIntervalMs, run: () => this.pass() })
  }

  start(): void {
    this.task.start()
  }

  stop(): Promise<void> {
    return this.task.stop()
  }

  /** A schedule changed on this server: look again now. */
  wake(): void {
    this.task.wakeWithin(0)
  }

  private async pass(): Promise<number> {
    for (;;) {
      const batch = await this.deps.db.transaction((trx) => this.fireBatch(trx))
      this.deps.runs.announce(batch.fired)
      for (const run of batch.cancelled) this.deps.metrics.recordCancelled(run)
      if (batch.taken < this.deps.batchSize && !batch.hasMore) break
    }
    const dueInMs = await scheduleNextDueInMs(this.deps.db)
    return dueInMs === undefined ? this.deps.pollIntervalMs : Math.max(0, Math.min(Math.ceil(dueInMs), this.deps.pollIntervalMs))
  }

  private async fireBatch(trx: Knex.Transaction): Promise<{ taken: number; hasMore: boolean; fired: FiredRun[]; cancelled: RunRecord[] }> {
    const { now, schedules } = await scheduleTakeDue(trx, { limit: this.deps.batchSize })
    if (schedules.length === 0) return { taken: 0, hasMore: false, fired: [], cancelled: [] }
    const unfinished = await scheduleUnfinishedRuns(trx, { schedules: schedules.filter((s) => s.overlap !== 'allow' || s.bufferedAt) })
    const unfinishedBySchedule = new Map<string, string[]>()
    for (const run of unfinished) {
      const key = `${run.namespace}/${run.scheduleId}`
      const runIds = unfinishedBySchedule.get(key)
      if (runIds) runIds.push(run.runId)
      else unfinishedBySchedule.set(key, [run.runId])
    }

    const ticks: ScheduleTickToFire[] = []
    const advances: ScheduleAdvance[] = []
    const toCancel: string[] = []
    let hasMore = false
    for (const schedule of schedules) {
      let series: CronSeries
      try {
        series = this.series.get(schedule.cron, schedule.timezone)
      } catch (error) {
        // Stored expressions were valid when stored; one this process cannot read (a zone its time zone
        // database lacks) stops that schedule, rather than failing every batch it is taken in.
        this.deps.logger.error(
          { err: error, namespace: schedule.namespace, scheduleId: schedule.id },
          'schedule cannot be evaluated; it stops',
        )
        advances.push({
          namespace: schedule.namespace,
          id: schedule.id,
          nextFireAt: undefined,
          lastTickAt: undefined,
          bufferedAt: undefined,
        })
        continue
      }
      const runIds = unfinishedBySchedule.get(`${schedule.namespace}/${schedule.id}`) ?? []
      const plan: TickPlan = planDueTicks(
        {
          overlap: schedule.overlap,
          catchupWindowMs: schedule.catchupWindowMs,
          nextFireAt: schedule.nextFireAt,
          bufferedAt: schedule.bufferedAt,
          hasUnfinishedRun: runIds.length > 0,
        },
        series,
        now,
        ticksPerScheduleMax,
      )
      if (plan.cancelUnfinished) toCancel.push(...runIds)
      for (const tick of plan.fire) ticks.push({ namespace: schedule.namespace, schedule, tick })
      advances.push({ namespace: schedule.namespace, id: schedule.id, ...plan })
      if (plan.nextFireAt && plan.nextFireAt <= now) hasMore = true
      if (plan.isBehindWindow || plan.skipped > 0) {
        // Debug: a frequent schedule with a slow job drops a tick every period, by design.
        this.deps.logger.debug(
          { namespace: schedule.namespace, scheduleId: schedule.id, skipped: plan.skipped, isBehindWindow: plan.isBehindWindow },
          'schedule ticks dropped (overlap policy, or older than the catch-up window)',
        )
      }
    }

    const cancelled: RunRecord[] = []
    // In id order, the order other writers lock runs in.
    for (const runId of toCancel.sort()) {
      const run = unfinished.find((u) => u.runId === runId)!
      const status = await runLockForCancel(trx, { namespace: run.namespace, runId })
      if (!status || finishedStatuses.has(publicStatus(status))) continue
      const error = {
        name: 'CancelledError',
        message: `cancelled by schedule ${run.scheduleId}: a newer tick replaces it (overlap cancel_previous)`,
      }
      cancelled.push(await runCancel(trx, { runId, error, isRunning: status === 'running' }))
    }
    const fired = await this.deps.runs.insert(trx, ticks)
    await scheduleAdvance(trx, advances)
    return { taken: schedules.length, hasMore, fired, cancelled }
  }
}
