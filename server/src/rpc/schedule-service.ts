import type { Schedule, ScheduleServiceServer } from '@stackshift/proto/schedule-service'
import type { ServerConfig } from '../config.js'
import type { ScheduleView } from '../core/schedule.js'
import type { Logger } from '../logger.js'
import type { Schedules } from '../operations/schedules.js'
import { runStatusToProto, toRunMessage } from './convert.js'
import { unaryHandler } from './error-map.js'
import {
  parseBackfillSchedule,
  parseCreateSchedule,
  parseListSchedules,
  parseScheduleRef,
  toOverlapPolicyMessage,
} from './schedule-requests.js'

function toScheduleMessage(schedule: ScheduleView): Schedule {
  return {
    namespace: schedule.namespace,
    definition: {
      id: schedule.id,
      cron: schedule.cron,
      timezone: schedule.timezone,
      queue: schedule.queue,
      job: schedule.job,
      payloadJson: schedule.payloadJson,
      overlap: toOverlapPolicyMessage(schedule.overlap),
      catchupWindowMs: schedule.catchupWindowMs,
      paused: schedule.isPaused,
    },
    isPaused: schedule.isPaused,
    nextFireTimes: schedule.nextFireTimes,
    recentRuns: schedule.recentRuns.map((run) => ({
      runId: run.runId,
      status: runStatusToProto[run.status],
      scheduledAt: run.scheduledAt,
    })),
    lastTickAt: schedule.lastTickAt,
    bufferedTickAt: schedule.bufferedAt,
    createdAt: schedule.createdAt,
    updatedAt: schedule.updatedAt,
  }
}

/** ScheduleService: validate, call the operation, convert. No SQL and no status codes here. */
export function createScheduleService(deps: { config: ServerConfig; logger: Logger; schedules: Schedules }): ScheduleServiceServer {
  const { config, logger, schedules } = deps
  return {
    createSchedule: unaryHandler(logger, async (request) => {
      const { schedule, isCreated } = await schedules.define(parseCreateSchedule(request, config))
      return { schedule: toScheduleMessage(schedule), isCreated }
    }),
    getSchedule: unaryHandler(logger, async (request) => {
      const { namespace, id } = parseScheduleRef(request)
      return { schedule: toScheduleMessage(await schedules.get(namespace, id)) }
    }),
    listSchedules: unaryHandler(logger, async (request) => {
      const page = await schedules.list(parseListSchedules(request))
      return { schedules: page.schedules.map(toScheduleMessage), nextCursor: page.next ?? '' }
    }),
    deleteSchedule: unaryHandler(logger, async (request) => {
      const { namespace, id } = parseScheduleRef(request)
      await schedules.delete(namespace, id)
      return {}
    }),
    pauseSchedule: unaryHandler(logger, async (request) => {
      const { namespace, id } = parseScheduleRef(request)
      return { schedule: toScheduleMessage(await schedules.pause(namespace, id)) }
    }),
    resumeSchedule: unaryHandler(logger, async (request) => {
      const { namespace, id } = parseScheduleRef(request)
      return { schedule: toScheduleMessage(await schedules.resume(namespace, id)) }
    }),
    triggerSchedule: unaryHandler(logger, async (request) => {
      const { namespace, id } = parseScheduleRef(request)
      return { run: toRunMessage(await schedules.trigger(namespace, id)) }
    }),
    backfillSchedule: unaryHandler(logger, async (request) => {
      const { fired, existing } = await schedules.backfill(parseBackfillSchedule(request))
      return { firedCount: fired, existingCount: existing }
    }),
  }
}
