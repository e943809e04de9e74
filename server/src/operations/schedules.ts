import type { Knex } from 'knex'
import { NotFoundError, ResourceExhaustedError } from '../core/errors.js'
import { limits } from '../core/limits.js'
import { newRunId } from '../core/run-id.js'
import type { RunRecord } from '../core/run.js'
import { type ScheduleDefinition, type ScheduleRecord, type ScheduleView, scheduleRunKey } from '../core/schedule.js'
import { type CronSeries, parseCronSeries } from '../core/schedule-ticks.js'
import type { Executor } from '../db/database.js'
import { runGet } from '../db/queries/run-reads.js'
import {
  scheduleDelete,
  scheduleGet,
  scheduleList,
  schedulePause,
  scheduleRecentRuns,
  scheduleResume,
  scheduleRunAt,
  scheduleRunInsertMany,
  scheduleUpsert,
} from '../db/queries/schedules.js'
import type { Logger } from '../logger.js'
import type { ServerMetrics } from '../observability/metrics.js'
import type { FlowPolicies } from './flow-policies.js'
import type { ReadyAnnouncer } from './ready-announcer.js'

/** How many upcoming ticks and past runs a schedule is shown with. */
const shownTicks = 5
/** Backfill runs per statement. */
const backfillBatchSize = 1000

/** A tick to fire: the schedule, as stored, and the instant. */
export interface ScheduleTickToFire {
  namespace: string
  schedule: ScheduleDefinition
  tick: Date
}

/** A run a schedule fired, once its transaction committed. */
export interface FiredRun {
  namespace: string
  runId: string
  queue: string
  job: string
  scheduleId: string
}

/**
 * Writes the runs of schedules' ticks: one statement for many ticks (the
 * firing pass's batches, a backfill's), and after the commit wakes this
 * server's workers (others are woken by the statement's NOTIFY) and counts
 * the runs as enqueued.
 */
export class ScheduledRuns {
  constructor(
    private readonly deps: {
      announcer: ReadyAnnouncer
      metrics: ServerMetrics
      policies: FlowPolicies
      maxAttempts: number
      idempotencyTtlMs: number
    },
  ) {}

  /**
   * Inserts a run for each tick that has none; returns those inserted. Call
   * `announce` with them once `db` commits. A run of a job or queue under
   * flow control gets its key value as an enqueued one does (debounce is for
   * enqueues only: every tick is its own run).
   */
  insert(db: Executor, ticks: readonly ScheduleTickToFire[]): Promise<FiredRun[]> {
    const queuesByNamespace = new Map<string, Set<string>>()
    for (const { namespace, schedule } of ticks)
      queuesByNamespace.set(namespace, (queuesByNamespace.get(namespace) ?? new Set()).add(schedule.queue))
    return scheduleRunInsertMany(db, {
      runs: ticks.map(({ namespace, schedule, tick }) => ({
        namespace,
        scheduleId: schedule.id,
        runId: newRunId(),
        scheduledAt: tick,
        idempotencyKey: scheduleRunKey(schedule.id, tick),
        concurrencyKey: this.deps.policies.placementOf(namespace, { ...schedule, concurrencyKey: undefined }).concurrencyKey,
      })),
      maxAttempts: this.deps.maxAttempts,
      idempotencyTtlMs: this.deps.idempotencyTtlMs,
      readyNotices: [...queuesByNamespace].map(([namespace, queues]) => this.deps.announcer.encodeNotice(namespace, [...queues])),
    })
  }

  announce(runs: readonly FiredRun[]): void {
    for (const [namespace, fired] of groupBy(runs, (run) => run.namespace)) {
      this.deps.announcer.announceLocally(namespace, [...new Set(fired.map((run) => run.queue))])
      this.deps.metrics.recordEnqueued(namespace, fired)
    }
  }
}

/**
 * What clients do to schedules: define, read, pause, resume, trigger,
 * backfill, delete. Firing on ticks is the pass's (maintenance/schedule-firing.ts);
 * `wake` asks this server's pass to look again, when a change may have made a
 * tick due sooner than it planned.
 */
export class Schedules {
  constructor(private readonly deps: { db: Knex; runs: ScheduledRuns; logger: Logger; wake: () => void }) {}

  /** CreateSchedule: stores the schedule or redefines it (see scheduleUpsert). */
  async define(params: {
    namespace: string
    definition: ScheduleDefinition
    isPaused: boolean
  }): Promise<{ schedule: ScheduleView; isCreated: boolean }> {
    const series = parseCronSeries(params.definition.cron, params.definition.timezone, 'schedule.')
    const { schedule, isCreated } = await scheduleUpsert(this.deps.db, { ...params, nextFireAt: series.nextAfter(new Date()) })
    this.deps.logger.info(
      { namespace: params.namespace, scheduleId: schedule.id, cron: schedule.cron, timezone: schedule.timezone, isCreated },
      'schedule defined',
    )
    this.deps.wake()
    return { schedule: (await this.withViews([schedule]))[0]!, isCreated }
  }

  async get(namespace: string, id: string): Promise<ScheduleView> {
    return (await this.withViews([await this.find(this.deps.db, namespace, id)]))[0]!
  }

  /** A page of schedules by id, and the cursor of the next page (the last id) when the page is full. */
  async list(params: {
    namespace: string
    afterId: string | undefined
    limit: number
  }): Promise<{ schedules: ScheduleView[]; next: string | undefined }> {
    const schedules = await scheduleList(this.deps.db, params)
    return { schedules: await this.withViews(schedules), next: schedules.length === params.limit ? schedules.at(-1)!.id : undefined }
  }

  async delete(namespace: string, id: string): Promise<void> {
    if (!(await scheduleDelete(this.deps.db, { namespace, id }))) throw notFound(namespace, id)
    this.deps.logger.info({ namespace, scheduleId: id }, 'schedule deleted')
  }

  async pause(namespace: string, id: string): Promise<ScheduleView> {
    const paused = await schedulePause(this.deps.db, { namespace, id })
    if (!paused) throw notFound(namespace, id)
    this.deps.logger.info({ namespace, scheduleId: id }, 'schedule paused')
    return (await this.withViews([paused]))[0]!
  }

  async resume(namespace: string, id: string): Promise<ScheduleView> {
    const schedule = await this.find(this.deps.db, namespace, id)
    const nextFireAt = seriesOf(schedule).nextAfter(new Date())
    const resumed = await scheduleResume(this.deps.db, { namespace, id, nextFireAt })
    if (!resumed) throw notFound(namespace, id)
    this.deps.logger.info({ namespace, scheduleId: id, nextFireAt }, 'schedule resumed')
    this.deps.wake()
    return (await this.withViews([resumed]))[0]!
  }

  /** TriggerSchedule: one run now, its tick the instant of the trigger (to the millisecond). */
  async trigger(namespace: string, id: string): Promise<RunRecord> {
    const tick = new Date()
    const { fired, run } = await this.deps.db.transaction(async (trx) => {
      const schedule = await this.find(trx, namespace, id)
      const fired = await this.deps.runs.insert(trx, [{ namespace, schedule, tick }])
      // Two triggers in the same millisecond name the same tick: the second gets the first's run.
      const runId = fired[0]?.runId ?? (await scheduleRunAt(trx, { namespace, scheduleId: id, scheduledAt: tick }))
      const run = runId === undefined ? undefined : await runGet(trx, { namespace, runId })
      if (!run) throw new NotFoundError(`the run of schedule ${id} at ${tick.toISOString()} was not stored`)
      return { fired, run }
    })
    this.deps.runs.announce(fired)
    this.deps.logger.info({ namespace, scheduleId: id, runId: run.id }, 'schedule triggered')
    return run
  }

  /**
   * BackfillSchedule: a run for every tick from `startAt` (included) to
   * `endAt` (excluded) that has none, in one transaction, whatever the
   * overlap policy and whether the schedule is paused.
   */
  async backfill(params: { namespace: string; id: string; startAt: Date; endAt: Date }): Promise<{ fired: number; existing: number }> {
    const { namespace, id } = params
    const { fired, ticks } = await this.deps.db.transaction(async (trx) => {
      const schedule = await this.find(trx, namespace, id)
      const ticks = seriesOf(schedule).ticksBetween(params.startAt, params.endAt, limits.backfillTicksMax)
      if (ticks.length > limits.backfillTicksMax) {
        throw new ResourceExhaustedError('end_at', `the range holds more than ${limits.backfillTicksMax} ticks; backfill it in parts`)
      }
      const fired: FiredRun[] = []
      for (let start = 0; start < ticks.length; start += backfillBatchSize) {
        const batch = ticks.slice(start, start + backfillBatchSize)
        fired.push(
          ...(await this.deps.runs.insert(
            trx,
            batch.map((tick) => ({ namespace, schedule, tick })),
          )),
        )
      }
      return { fired, ticks }
    })
    this.deps.runs.announce(fired)
    this.deps.logger.info({ namespace, scheduleId: id, ticks: ticks.length, fired: fired.length }, 'schedule backfilled')
    return { fired: fired.length, existing: ticks.length - fired.length }
  }

  private async find(db: Executor, namespace: string, id: string): Promise<ScheduleRecord> {
    const schedule = await scheduleGet(db, { namespace, id })
    if (!schedule) throw notFound(namespace, id)
    return schedule
  }

  /** Schedules with their next ticks (from their next unhandled tick, or from now for a paused one) and last runs. */
  private async withViews(schedules: readonly ScheduleRecord[]): Promise<ScheduleView[]> {
    const byNamespace = groupBy(schedules, (schedule) => schedule.namespace)
    const recent = new Map<string, ScheduleView['recentRuns']>()
    for (const [namespace, inNamespace] of byNamespace) {
      const ids = inNamespace.map((schedule) => schedule.id)
      for (const [id, runs] of await scheduleRecentRuns(this.deps.db, { namespace, ids, count: shownTicks }))
        recent.set(`${namespace}/${id}`, runs)
    }
    const now = new Date()
    return schedules.map((schedule) => ({
      ...schedule,
      nextFireTimes: upcomingTicks(schedule, seriesOf(schedule), now),
      recentRuns: recent.get(`${schedule.namespace}/${schedule.id}`) ?? [],
    }))
  }
}

function upcomingTicks(schedule: ScheduleRecord, series: CronSeries, now: Date): Date[] {
  if (schedule.isPaused) return series.nextTicks(now, shownTicks)
  if (!schedule.nextFireAt) return []
  return [schedule.nextFireAt, ...series.nextTicks(schedule.nextFireAt, shownTicks - 1)]
}

function seriesOf(schedule: ScheduleRecord): CronSeries {
  return parseCronSeries(schedule.cron, schedule.timezone)
}

function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>()
  for (const item of items) {
    const group = groups.get(keyOf(item))
    if (group) group.push(item)
    else groups.set(keyOf(item), [item])
  }
  return groups
}

function notFound(namespace: string, id: string): NotFoundError {
  return new NotFoundError(`schedule ${id} not found in namespace ${namespace}`)
}
