import { z } from 'zod'
import { InvalidArgumentError, ResourceExhaustedError } from '../core/errors.js'
import { concurrencyKeyMaxLength } from '../core/flow-policy.js'
import { checkJsonObject, checkJsonText, checkJsonValue } from '../core/json-text.js'
import { defaultQueue, limits } from '../core/limits.js'
import { isUuid, newRunId } from '../core/run-id.js'
import type { NewRun, RunFilter, RunStatus } from '../core/run.js'
import type { NewEvent } from '../operations/events.js'
import type { CancelRunRequest, ListRunsRequest, NewRun as NewRunMessage, SendEventRequest } from '@stackshift/proto/run-service'
import {
  type RequestLimits as Limits,
  hasNoNul,
  instantSchema,
  nameSchema,
  namespaceSchema,
  parse,
  parseNamespace,
  textSchema,
  toDiagnosticText,
  uuidSchema,
} from './validation.js'

/** RunService requests as validated domain values (see validation.ts on how rejections name fields). */

const newRunSchema = z
  .object({
    queue: z
      .string()
      .transform((value) => value || defaultQueue)
      .pipe(nameSchema(limits.queueMaxLength)),
    job: nameSchema(limits.jobMaxLength),
    idempotencyKey: textSchema(limits.idempotencyKeyMaxLength),
    idempotencyTtlMs: z.number().int().min(0, 'must not be negative').max(limits.delayMaxMs, `must be at most ${limits.delayMaxMs}`),
    delayMs: z.number().int().min(0, 'must not be negative').max(limits.delayMaxMs, `must be at most ${limits.delayMaxMs} (ten years)`),
    runAt: instantSchema.optional(),
    priority: z
      .number()
      .int()
      .min(limits.priorityMin, `must be at least ${limits.priorityMin}`)
      .max(limits.priorityMax, `must be at most ${limits.priorityMax}`),
    maxAttempts: z.number().int().max(limits.maxAttemptsMax, `must be at most ${limits.maxAttemptsMax}`),
    concurrencyKey: textSchema(concurrencyKeyMaxLength).optional(),
    traceContext: z
      .record(
        z.string(),
        z
          .string()
          .max(limits.traceContextValueMaxLength, `values must be at most ${limits.traceContextValueMaxLength} characters`)
          .refine(hasNoNul, 'values must not contain the NUL character (\\u0000)'),
      )
      .refine((carrier) => Object.keys(carrier).length <= limits.traceContextEntriesMax, {
        error: `must hold at most ${limits.traceContextEntriesMax} entries`,
      })
      .superRefine((carrier, context) => {
        for (const key of Object.keys(carrier)) {
          if (key.length === 0 || key.length > limits.traceContextKeyMaxLength) {
            context.addIssue({ code: 'custom', path: [key], message: `keys must be 1 to ${limits.traceContextKeyMaxLength} characters` })
          } else if (!hasNoNul(key)) {
            context.addIssue({ code: 'custom', path: [key], message: 'keys must not contain the NUL character (\\u0000)' })
          }
        }
      }),
  })
  .refine((run) => run.delayMs === 0 || run.runAt === undefined, { error: 'must not be set together with run_at', path: ['delayMs'] })

/** A validated NewRun message, with a fresh run id. */
function toNewRun(message: NewRunMessage | undefined, config: Limits, prefix: string): NewRun {
  if (!message) throw new InvalidArgumentError(prefix, 'is required')
  const run = parse(newRunSchema, message, prefix)
  const payload = checkJsonValue(`${prefix}.payload_json`, message.payloadJson, config.maxPayloadBytes)
  return {
    id: newRunId(),
    queue: run.queue,
    job: run.job,
    payloadJson: payload.text,
    payloadBytes: payload.bytes,
    idempotencyKey: run.idempotencyKey || undefined,
    idempotencyTtlMs: run.idempotencyTtlMs || config.idempotencyTtlMs,
    delayMs: run.delayMs,
    runAt: run.runAt,
    priority: run.priority,
    maxAttempts: run.maxAttempts || config.defaultMaxAttempts,
    traceContext: Object.keys(run.traceContext).length > 0 ? run.traceContext : undefined,
    concurrencyKey: run.concurrencyKey,
  }
}

export function parseEnqueue(
  request: { namespace: string; run: NewRunMessage | undefined },
  config: Limits,
): { namespace: string; run: NewRun } {
  return { namespace: parseNamespace(request.namespace), run: toNewRun(request.run, config, 'run') }
}

export function parseEnqueueBatch(
  request: { namespace: string; runs: NewRunMessage[] },
  config: Limits,
): { namespace: string; runs: NewRun[] } {
  if (request.runs.length === 0) throw new InvalidArgumentError('runs', 'must hold at least one run')
  if (request.runs.length > config.maxBatchSize) {
    throw new ResourceExhaustedError('runs', `holds ${request.runs.length} runs; the limit is ${config.maxBatchSize}`)
  }
  return {
    namespace: parseNamespace(request.namespace),
    runs: request.runs.map((run, index) => toNewRun(run, config, `runs[${index}]`)),
  }
}

const runRefSchema = z.object({ namespace: namespaceSchema, runId: z.string().min(1, 'must not be empty') })

export function parseRunRef(request: { namespace: string; runId: string }): { namespace: string; runId: string } {
  return parse(runRefSchema, request, '')
}

const waitForRunSchema = runRefSchema.extend({
  timeoutMs: z.number().int().min(0, 'must not be negative').max(limits.runWaitMaxMs, `must be at most ${limits.runWaitMaxMs}`),
})

export function parseWaitForRun(request: { namespace: string; runId: string; timeoutMs: number }): {
  namespace: string
  runId: string
  timeoutMs: number
} {
  return parse(waitForRunSchema, request, '')
}

const sendEventSchema = z.object({
  namespace: namespaceSchema,
  id: textSchema(limits.eventIdMaxLength),
  name: nameSchema(limits.eventNameMaxLength),
})

export function parseSendEvent(request: SendEventRequest, config: Limits): NewEvent {
  const parsed = parse(sendEventSchema, request, '')
  return {
    namespace: parsed.namespace,
    id: parsed.id || undefined,
    name: parsed.name,
    dataJson: checkJsonText('data_json', request.dataJson, config.maxPayloadBytes),
  }
}

const cancelRunSchema = runRefSchema.extend({
  reason: z.string().max(limits.errorTextMaxLength, `must be at most ${limits.errorTextMaxLength} characters`),
})

export function parseCancelRun(request: CancelRunRequest): { namespace: string; runId: string; reason: string } {
  const parsed = parse(cancelRunSchema, request, '')
  return { ...parsed, reason: toDiagnosticText(parsed.reason, limits.errorTextMaxLength) }
}

const listRunsSchema = z.object({
  namespace: namespaceSchema,
  queue: textSchema(limits.queueMaxLength),
  job: textSchema(limits.jobMaxLength),
  createdAfter: instantSchema.optional(),
  createdBefore: instantSchema.optional(),
  limit: z.number().int().max(limits.listRunsLimitMax, `must be at most ${limits.listRunsLimitMax}`),
  // A cursor is the id of the last run of a page.
  cursor: z.string().refine((cursor) => cursor === '' || isUuid(cursor), 'is not a cursor returned by ListRuns'),
  runId: z.union([z.literal(''), uuidSchema]),
  idempotencyKey: textSchema(limits.idempotencyKeyMaxLength),
  sourceRunId: z.union([z.literal(''), uuidSchema]),
  scheduleId: textSchema(limits.scheduleIdMaxLength),
  parentRunId: z.union([z.literal(''), uuidSchema]),
})

export function parseListRuns(request: ListRunsRequest, status: RunStatus | undefined): RunFilter {
  const parsed = parse(listRunsSchema, request, '')
  return {
    namespace: parsed.namespace,
    queue: parsed.queue || undefined,
    job: parsed.job || undefined,
    status,
    createdAfter: parsed.createdAfter,
    createdBefore: parsed.createdBefore,
    limit: parsed.limit || limits.listRunsLimitDefault,
    afterId: parsed.cursor || undefined,
    runId: parsed.runId || undefined,
    idempotencyKey: parsed.idempotencyKey || undefined,
    sourceRunId: parsed.sourceRunId || undefined,
    scheduleId: parsed.scheduleId || undefined,
    parentRunId: parsed.parentRunId || undefined,
    payloadMatchJson:
      request.payloadMatchJson === ''
        ? undefined
        : checkJsonObject('payload_match_json', request.payloadMatchJson, limits.payloadMatchMaxBytes),
  }
}
