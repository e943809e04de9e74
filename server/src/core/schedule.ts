import type { CronSeries } from './schedule-ticks.js'
import type { RunStatus } from './run.js'

/** Domain types of schedules, and what a pass does with a schedule's due ticks (pure). */

/** What a tick does while an earlier run of the schedule is unfinished (DESIGN.md, Schedules). */
export type OverlapPolicy = 'skip' | 'buffer_one' | 'allow' | 'cancel_previous'

/** The policy of a schedule that names none: at most one unfinished run, as Temporal's default. */
export const defaultOverlapPolicy: OverlapPolicy = 'skip'

/**
 * The catch-up window of a schedule that names none: one day. A daily job
 * missed during an outage of a few hours still runs; a frequent job with
 * the default overlap policy catches up with one run, not one per missed
 * tick (the first fires, the rest find it unfinished and are skipped).
 */
export const defaultCatchupWindowMs = 86_400_000
/** The shortest catch-up window: a tick found a few seconds late by a busy server must still fire. */
export const catchupWindowMinMs = 10_000
/** The longest catch-up window: a year. */
export const catchupWindowMaxMs = 365 * 86_400_000

/** A schedule as its creator defines it, validated. */
export interface ScheduleDefinition {
  id: string
  cron: string
  timezone: string
  queue: string
  job: string
  payloadJson: string
  /** Size of the payload as received, in bytes of JSON text (runs keep it; claims are sized by it). */
  payloadBytes: number
  overlap: OverlapPolicy
  catchupWindowMs: number
}

/** A run a schedule fired, as schedules show it. */
export interface ScheduleRunRef {
  runId: string
  status: RunStatus
  scheduledAt: Date
}

/** A stored schedule. */
export interface ScheduleRecord extends ScheduleDefinition {
  namespace: string
  isPaused: boolean
  /** The first tick not yet handled; undefined when the expression has no more. */
  nextFireAt: Date | undefined
  lastTickAt: Date | undefined
  /** A tick waiting for the unfinished run to end (buffer_one). */
  bufferedAt: Date | undefined
  createdAt: Date
  updatedAt: Date
}

/** A schedule with what it will do and what it did, as GetSchedule and ListSchedules return it. */
export interface ScheduleView extends ScheduleRecord {
  nextFireTimes: Date[]
  recentRuns: ScheduleRunRef[]
}

/** The idempotency key of the run of `scheduleId`'s tick at `tick`. */
export function scheduleRunKey(scheduleId: string, tick: Date): string {
  return `schedule:${scheduleId}:${tick.toISOString()}`
}

/** What a pass knows about one due schedule. */
export interface DueSchedule {
  overlap: OverlapPolicy
  catchupWindowMs: number
  /** The first tick not handled yet; undefined when the expression has no more. */
  nextFireAt: Date | undefined
  bufferedAt: Date | undefined
  /** Whether a run of the schedule is queued, running or waiting. */
  hasUnfinishedRun: boolean
}

/** What a pass does with one schedule. */
export interface TickPlan {
  /** Ticks to fire, oldest first. */
  fire: Date[]
  /** Cancel the schedule's unfinished runs first (cancel_previous). */
  cancelUnfinished: boolean
  /** The tick left waiting (buffer_one), if any. */
  bufferedAt: Date | undefined
  /** The latest tick handled by this pass; undefined when it handled none. */
  lastTickAt: Date | undefined
  /** The first tick not handled: the next pass's; undefined when the expression has no more. */
  nextFireAt: Date | undefined
  /** Ticks dropped by the overlap policy. */
  skipped: number
  /** Whether ticks older than the catch-up window were dropped. */
  isBehindWindow: boolean
}

/**
 * Decides what to do with a schedule's ticks due at `now`: every tick from
 * `nextFireAt` up to `now`, oldest first, at most `maxTicks` of them (the
 * rest are left for the next pass). Ticks older than the catch-up window are
 * dropped without being walked through one by one. Each remaining tick meets
 * the overlap policy against what is unfinished, counting the runs this
 * plan fires: skip drops it, buffer_one keeps the first such tick waiting
 * (and fires a waiting tick first once nothing is unfinished), allow fires
 * it, cancel_previous fires only the last due tick after cancelling what is
 * unfinished (firing the earlier ones would only have them cancelled by the
 * next).
 */
export function planDueTicks(schedule: DueSchedule, series: CronSeries, now: Date, maxTicks: number): TickPlan {
  const plan: TickPlan = {
    fire: [],
    cancelUnfinished: false,
    bufferedAt: schedule.bufferedAt,
    lastTickAt: undefined,
    nextFireAt: schedule.nextFireAt,
    skipped: 0,
    isBehindWindow: false,
  }
  let isBusy = schedule.hasUnfinishedRun
  if (plan.bufferedAt && !isBusy) {
    plan.fire.push(plan.bufferedAt)
    plan.bufferedAt = undefined
    isBusy = true
  }
  const oldestKept = now.getTime() - schedule.catchupWindowMs
  let tick: Date | undefined = schedule.nextFireAt
  if (tick && tick.getTime() < oldestKept) {
    plan.isBehindWindow = true
    tick = series.nextAfter(new Date(oldestKept - 1))
  }
  for (let handled = 0; tick && tick <= now && handled < maxTicks; handled++) {
    plan.lastTickAt = tick
    switch (schedule.overlap) {
      case 'allow':
        plan.fire.push(tick)
        break
      case 'skip':
        if (isBusy) plan.skipped++
        else plan.fire.push(tick)
        break
      case 'buffer_one':
        if (!isBusy) plan.fire.push(tick)
        else if (!plan.bufferedAt) plan.bufferedAt = tick
        else plan.skipped++
        break
      case 'cancel_previous':
        plan.skipped += plan.fire.length
        plan.fire = [tick]
        plan.cancelUnfinished = schedule.hasUnfinishedRun
        break
    }
    isBusy = true
    tick = series.nextAfter(tick)
  }
  plan.nextFireAt = tick
  return plan
}
