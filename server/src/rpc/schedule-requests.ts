import {
  type BackfillScheduleRequest,
  type CreateScheduleRequest,
  type ListSchedulesRequest,
  ScheduleDefinition as ScheduleDefinitionFactory,
  ScheduleOverlapPolicy,
} from '@stackshift/proto/schedule-service'
import { z } from 'zod'
import { InvalidArgumentError } from '../core/errors.js'
import { checkJsonValue } from '../core/json-text.js'
import { defaultQueue, limits } from '../core/limits.js'
import {
  type OverlapPolicy,
  type ScheduleDefinition,
  catchupWindowMaxMs,
  catchupWindowMinMs,
  defaultCatchupWindowMs,
  defaultOverlapPolicy,
} from '../core/schedule.js'
import { defaultTimezone, parseCronSeries } from '../core/schedule-ticks.js'
import { type RequestLimits, instantSchema, namespaceSchema, nameSchema, parse, textSchema } from './validation.js'

/** ScheduleService requests as validated domain values (see validation.ts on how rejections name fields). */

const overlapPolicies = new Map<ScheduleOverlapPolicy, OverlapPolicy>([
  [ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED, defaultOverlapPolicy],
  [ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_SKIP, 'skip'],
  [ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE, 'buffer_one'],
  [ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_ALLOW, 'allow'],
  [ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_CANCEL_PREVIOUS, 'cancel_previous'],
])

/** The policy's protocol value. */
export function toOverlapPolicyMessage(policy: OverlapPolicy): ScheduleOverlapPolicy {
  for (const [message, value] of overlapPolicies)
    if (value === policy && message !== ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED) return message
  return ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED
}

/** A schedule's id: it goes into idempotency keys and URLs, so a plain name. */
const scheduleIdSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(limits.scheduleIdMaxLength, `must be at most ${limits.scheduleIdMaxLength} characters`)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, 'must start with a letter or digit and contain only letters, digits, ".", "_", ":" and "-"')

const definitionSchema = z.object({
  id: scheduleIdSchema,
  queue: z.union([z.literal(''), nameSchema(limits.queueMaxLength)]),
  job: nameSchema(limits.jobMaxLength),
  catchupWindowMs: z
    .number()
    .int()
    .refine(
      (ms) => ms === 0 || (ms >= catchupWindowMinMs && ms <= catchupWindowMaxMs),
      `must be 0 (the default, one day) or ${catchupWindowMinMs} to ${catchupWindowMaxMs} milliseconds`,
    ),
})

const scheduleRefSchema = z.object({ namespace: namespaceSchema, scheduleId: scheduleIdSchema })

/** CreateScheduleRequest: the namespace, and the definition with its defaults filled in. */
export function parseCreateSchedule(
  request: CreateScheduleRequest,
  config: RequestLimits,
): { namespace: string; definition: ScheduleDefinition; isPaused: boolean } {
  const namespace = parse(namespaceSchema, request.namespace, 'namespace')
  const message = request.schedule ?? ScheduleDefinitionFactory.fromPartial({})
  const parsed = parse(definitionSchema, message, 'schedule')
  const overlap = overlapPolicies.get(message.overlap)
  if (!overlap) throw new InvalidArgumentError('schedule.overlap', `${message.overlap} is not a ScheduleOverlapPolicy`)
  const timezone = message.timezone || defaultTimezone
  // Checks the expression and the zone now, naming schedule.cron or schedule.timezone, before anything is stored.
  parseCronSeries(message.cron, timezone, 'schedule.')
  const payload = checkJsonValue('schedule.payload_json', message.payloadJson, config.maxPayloadBytes)
  return {
    namespace,
    isPaused: message.paused,
    definition: {
      id: parsed.id,
      cron: message.cron.trim(),
      timezone,
      queue: parsed.queue || defaultQueue,
      job: parsed.job,
      payloadJson: payload.text,
      payloadBytes: payload.bytes,
      overlap,
      catchupWindowMs: parsed.catchupWindowMs || defaultCatchupWindowMs,
    },
  }
}

/** A request that names one schedule. */
export function parseScheduleRef(request: { namespace: string; scheduleId: string }): { namespace: string; id: string } {
  const parsed = parse(scheduleRefSchema, request, '')
  return { namespace: parsed.namespace, id: parsed.scheduleId }
}

const listSchema = z.object({
  namespace: namespaceSchema,
  limit: z.number().int().max(limits.listSchedulesLimitMax, `must be at most ${limits.listSchedulesLimitMax}`),
  cursor: textSchema(limits.scheduleIdMaxLength),
})

export function parseListSchedules(request: ListSchedulesRequest): { namespace: string; afterId: string | undefined; limit: number } {
  const parsed = parse(listSchema, request, '')
  return { namespace: parsed.namespace, afterId: parsed.cursor || undefined, limit: parsed.limit || limits.listSchedulesLimitDefault }
}

const backfillSchema = scheduleRefSchema.extend({ startAt: instantSchema, endAt: instantSchema })

export function parseBackfillSchedule(request: BackfillScheduleRequest): { namespace: string; id: string; startAt: Date; endAt: Date } {
  const parsed = parse(backfillSchema, request, '')
  if (parsed.endAt <= parsed.startAt) throw new InvalidArgumentError('end_at', 'must be after start_at')
  return { namespace: parsed.namespace, id: parsed.scheduleId, startAt: parsed.startAt, endAt: parsed.endAt }
}
