import { type Schedule as ScheduleMessage, type ScheduleServiceClient, ScheduleOverlapPolicy } from '@stackshift/proto/schedule-service'
import { fromRunMessage, fromRunStatusMessage } from './convert.js'
import { type Duration, parseDurationMs } from './duration.js'
import { InvalidArgumentError } from './errors.js'
import { callUnary, withRetries } from './grpc.js'
import { encodeJson } from './json.js'
import type { Run, RunStatus } from './types.js'

/**
 * What a tick does while an earlier run of the schedule is unfinished:
 * `skip` drops it (the default), `buffer_one` fires it once that run ends
 * (one tick waits at most), `allow` fires it anyway, `cancel_previous`
 * cancels the unfinished run and fires.
 */
export type OverlapPolicy = 'skip' | 'buffer_one' | 'allow' | 'cancel_previous'

/** A schedule as `schedules.create` takes it. */
export interface ScheduleOptions<TPayload = unknown> {
  /** Unique in the namespace: letters, digits, ".", "_", ":" and "-", at most 200 characters. */
  id: string
  /** Five fields (minute hour day month weekday) or six (seconds first), e.g. "0 2 * * *". */
  cron: string
  /** IANA time zone the expression is read in, e.g. "Europe/Paris". Default "UTC". */
  timezone?: string
  /** Queue of the runs. Default "default". */
  queue?: string
  /** Job of the runs. */
  job: string
  /** Payload of every run (JSON). */
  payload?: TPayload
  /** Default 'skip'. */
  overlap?: OverlapPolicy
  /** Ticks missed while no server could fire them still fire when at most this old. Default one day; 10 s to 365 d. */
  catchupWindow?: Duration
  /** Create it paused. Ignored when the schedule exists. */
  paused?: boolean
}

/** A stored schedule, its next fire times and last runs. */
export interface Schedule<TPayload = unknown> {
  id: string
  namespace: string
  cron: string
  timezone: string
  queue: string
  job: string
  payload: TPayload
  overlap: OverlapPolicy
  catchupWindowMs: number
  paused: boolean
  /** The next five ticks (for a paused schedule: those it would fire if resumed now). */
  nextFireTimes: Date[]
  /** The last five runs by tick, newest first. */
  recentRuns: Array<{ runId: string; status: RunStatus; scheduledAt: Date }>
  /** The latest tick handled (fired, skipped or buffered). */
  lastTickAt: Date | undefined
  /** A tick waiting for the unfinished run to end (overlap 'buffer_one'). */
  bufferedTickAt: Date | undefined
  createdAt: Date
  updatedAt: Date
}

const overlapPolicies = new Map<OverlapPolicy, ScheduleOverlapPolicy>([
  ['skip', ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_SKIP],
  ['buffer_one', ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE],
  ['allow', ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_ALLOW],
  ['cancel_previous', ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_CANCEL_PREVIOUS],
])

function fromScheduleMessage<TPayload>(message: ScheduleMessage): Schedule<TPayload> {
  const definition = message.definition!
  return {
    id: definition.id,
    namespace: message.namespace,
    cron: definition.cron,
    timezone: definition.timezone,
    queue: definition.queue,
    job: definition.job,
    payload: JSON.parse(definition.payloadJson || 'null') as TPayload,
    overlap: [...overlapPolicies].find(([, value]) => value === definition.overlap)?.[0] ?? 'skip',
    catchupWindowMs: definition.catchupWindowMs,
    paused: message.isPaused,
    nextFireTimes: message.nextFireTimes,
    recentRuns: message.recentRuns.map((run) => ({
      runId: run.runId,
      status: fromRunStatusMessage(run.status) ?? 'queued',
      scheduledAt: run.scheduledAt ?? new Date(0),
    })),
    lastTickAt: message.lastTickAt,
    bufferedTickAt: message.bufferedTickAt,
    createdAt: message.createdAt ?? new Date(0),
    updatedAt: message.updatedAt ?? new Date(0),
  }
}

/**
 * `stackshift.schedules`: runs enqueued on a cron expression, stored in the
 * server's database and fired by whichever servers are up, each tick once.
 * Calls that change nothing when repeated (create, get, list, pause,
 * resume, backfill) are retried on UNAVAILABLE; trigger and delete are not.
 */
export class Schedules {
  constructor(
    private readonly client: ScheduleServiceClient,
    private readonly namespace: string,
    private readonly callTimeoutMs: number,
    private readonly retryBudgetMs: number,
  ) {}

  /** Creates the schedule, or redefines the one with its id (keeping its paused state and runs): safe to call at every start. */
  async create<TPayload = unknown>(options: ScheduleOptions<TPayload>): Promise<Schedule<TPayload>> {
    const overlap = overlapPolicies.get(options.overlap ?? 'skip')
    if (overlap === undefined) {
      throw new InvalidArgumentError(`overlap must be 'skip', 'buffer_one', 'allow' or 'cancel_previous', got "${String(options.overlap)}"`)
    }
    const schedule = {
      id: options.id,
      cron: options.cron,
      timezone: options.timezone ?? '',
      queue: options.queue ?? '',
      job: options.job,
      payloadJson: encodeJson(options.payload, 'payload') ?? '',
      overlap,
      catchupWindowMs: options.catchupWindow === undefined ? 0 : parseDurationMs(options.catchupWindow, 'catchupWindow'),
      paused: options.paused ?? false,
    }
    const response = await this.retried(() =>
      callUnary(this.client.createSchedule.bind(this.client), { namespace: this.namespace, schedule }, this.callTimeoutMs),
    )
    return fromScheduleMessage(response.schedule!)
  }

  async get<TPayload = unknown>(id: string): Promise<Schedule<TPayload>> {
    const response = await this.retried(() =>
      callUnary(this.client.getSchedule.bind(this.client), { namespace: this.namespace, scheduleId: id }, this.callTimeoutMs),
    )
    return fromScheduleMessage(response.schedule!)
  }

  /** Every schedule of the namespace, by id (fetched in pages of `pageSize`, default 100). */
  async list(options: { pageSize?: number } = {}): Promise<Schedule[]> {
    const schedules: Schedule[] = []
    let cursor = ''
    do {
      const request = { namespace: this.namespace, limit: options.pageSize ?? 0, cursor }
      const response = await this.retried(() => callUnary(this.client.listSchedules.bind(this.client), request, this.callTimeoutMs))
      schedules.push(...response.schedules.map((message) => fromScheduleMessage(message)))
      cursor = response.nextCursor
    } while (cursor !== '')
    return schedules
  }

  /** Deletes the schedule; its runs stay. */
  async delete(id: string): Promise<void> {
    await callUnary(this.client.deleteSchedule.bind(this.client), { namespace: this.namespace, scheduleId: id }, this.callTimeoutMs)
  }

  /** Stops it firing; ticks that pass while paused never fire. */
  async pause(id: string): Promise<Schedule> {
    const response = await this.retried(() =>
      callUnary(this.client.pauseSchedule.bind(this.client), { namespace: this.namespace, scheduleId: id }, this.callTimeoutMs),
    )
    return fromScheduleMessage(response.schedule!)
  }

  /** Makes it fire again, from its first tick after now. */
  async resume(id: string): Promise<Schedule> {
    const response = await this.retried(() =>
      callUnary(this.client.resumeSchedule.bind(this.client), { namespace: this.namespace, scheduleId: id }, this.callTimeoutMs),
    )
    return fromScheduleMessage(response.schedule!)
  }

  /** Fires one run now, paused or not, whatever the overlap policy. */
  async trigger<TResult = unknown, TPayload = unknown>(id: string): Promise<Run<TResult, TPayload>> {
    const response = await callUnary(
      this.client.triggerSchedule.bind(this.client),
      { namespace: this.namespace, scheduleId: id },
      this.callTimeoutMs,
    )
    return fromRunMessage(response.run!)
  }

  /**
   * Fires a run for every tick from `from` (included) to `to` (excluded)
   * that has none yet, whatever the overlap policy; at most 10,000 ticks.
   */
  async backfill(id: string, range: { from: Date; to: Date }): Promise<{ fired: number; existing: number }> {
    const request = { namespace: this.namespace, scheduleId: id, startAt: range.from, endAt: range.to }
    const response = await this.retried(() => callUnary(this.client.backfillSchedule.bind(this.client), request, this.callTimeoutMs))
    return { fired: response.firedCount, existing: response.existingCount }
  }

  private retried<T>(call: () => Promise<T>): Promise<T> {
    return withRetries(call, this.retryBudgetMs)
  }
}
