import { StepKind } from '@stackshift/proto/run'
import type { CancelRunRequest, ListRunsRequest, NewRun as NewRunMessage, SendEventRequest } from '@stackshift/proto/run-service'
import type {
  ClaimTaskRequest,
  CompleteRunRequest,
  CompleteStepRequest,
  FailRunRequest,
  HeartbeatRequest,
  LeaseRef as LeaseRefMessage,
  ReleaseRunRequest,
  SuspendRunRequest,
  WorkerHello,
} from '@stackshift/proto/worker-service'
import { z } from 'zod'
import type { ServerConfig } from '../config.js'
import { InvalidArgumentError, ResourceExhaustedError } from '../core/errors.js'
import { checkJsonText } from '../core/json-text.js'
import { defaultNamespace, defaultQueue, limits } from '../core/limits.js'
import { newRunId } from '../core/run-id.js'
import type { ErrorInfo, LeaseRef, NewRun, RunFilter, RunStatus, Suspension } from '../core/run.js'
import type { StepCompletion } from '../db/queries/steps.js'
import type { NewEvent } from '../operations/events.js'
import type { RunFailure } from '../operations/lease-writes.js'

/*
 * Turns protobuf requests into validated domain values. Every rejection names
 * the field as the client spelled it in the .proto file (snake_case, with
 * indexes for repeated fields), so a client in any language can find it.
 */

type Limits = Pick<ServerConfig, 'defaultMaxAttempts' | 'idempotencyTtlMs' | 'maxPayloadBytes' | 'maxBatchSize' | 'leaseMs'>

// Every schema is built once, at load: zod compiles a schema when it is
// created, and that costs far more than using it.

// eslint-disable-next-line no-control-regex
const controlCharacters = /[\u0000-\u001f\u007f]/

export function nameSchema(maxLength: number) {
  return z
    .string()
    .min(1, 'must not be empty')
    .max(maxLength, `must be at most ${maxLength} characters`)
    .refine((value) => !controlCharacters.test(value), 'must not contain control characters')
}

export const namespaceSchema = z
  .string()
  .max(limits.namespaceMaxLength, `must be at most ${limits.namespaceMaxLength} characters`)
  .regex(/^([A-Za-z0-9][A-Za-z0-9._-]*)?$/, 'must start with a letter or digit and contain only letters, digits, ".", "_" and "-"')
  .transform((value) => value || defaultNamespace)

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
export const uuidSchema = z.string().regex(uuidPattern, 'must be a UUID')

/** A lease duration, or 0 for "the default", which the caller fills in. */
const leaseMsSchema = z
  .number()
  .int()
  .refine(
    (ms) => ms === 0 || (ms >= limits.leaseMinMs && ms <= limits.leaseMaxMs),
    `must be 0 or ${limits.leaseMinMs} to ${limits.leaseMaxMs}`,
  )

const nameListSchema = (maxLength: number, maxCount: number) =>
  z
    .array(nameSchema(maxLength))
    .min(1, 'must name at least one')
    .max(maxCount, `must name at most ${maxCount}`)
    .transform((names) => [...new Set(names)])

function snakeCase(segment: string): string {
  return segment.replace(/[A-Z]/g, (letter) => '_' + letter.toLowerCase())
}

/** Validates `value`; on failure throws InvalidArgumentError naming the first offending field. */
export function parse<T>(schema: z.ZodType<T>, value: unknown, prefix: string): T {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const issue = result.error.issues[0]!
  let field = prefix
  for (const segment of issue.path)
    field += typeof segment === 'number' ? `[${segment}]` : `${field ? '.' : ''}${snakeCase(String(segment))}`
  throw new InvalidArgumentError(field || 'request', issue.message)
}

export function parseNamespace(namespace: string): string {
  return parse(namespaceSchema, namespace, 'namespace')
}

const newRunSchema = z
  .object({
    queue: z
      .string()
      .transform((value) => value || defaultQueue)
      .pipe(nameSchema(limits.queueMaxLength)),
    job: nameSchema(limits.jobMaxLength),
    idempotencyKey: z.string().max(limits.idempotencyKeyMaxLength, `must be at most ${limits.idempotencyKeyMaxLength} characters`),
    idempotencyTtlMs: z.number().int().min(0, 'must not be negative').max(limits.delayMaxMs, `must be at most ${limits.delayMaxMs}`),
    delayMs: z.number().int().min(0, 'must not be negative').max(limits.delayMaxMs, `must be at most ${limits.delayMaxMs} (ten years)`),
    runAt: z.date().optional(),
    priority: z
      .number()
      .int()
      .min(limits.priorityMin, `must be at least ${limits.priorityMin}`)
      .max(limits.priorityMax, `must be at most ${limits.priorityMax}`),
    maxAttempts: z.number().int().max(limits.maxAttemptsMax, `must be at most ${limits.maxAttemptsMax}`),
    traceContext: z
      .record(
        z.string(),
        z.string().max(limits.traceContextValueMaxLength, `values must be at most ${limits.traceContextValueMaxLength} characters`),
      )
      .refine((carrier) => Object.keys(carrier).length <= limits.traceContextEntriesMax, {
        message: `must hold at most ${limits.traceContextEntriesMax} entries`,
      })
      .superRefine((carrier, context) => {
        for (const key of Object.keys(carrier)) {
          if (key.length === 0 || key.length > limits.traceContextKeyMaxLength) {
            context.addIssue({ code: 'custom', path: [key], message: `keys must be 1 to ${limits.traceContextKeyMaxLength} characters` })
          }
        }
      }),
  })
  .refine((run) => run.delayMs === 0 || run.runAt === undefined, { message: 'must not be set together with run_at', path: ['delayMs'] })

/** A validated NewRun message, with a fresh run id. */
function toNewRun(message: NewRunMessage | undefined, config: Limits, prefix: string): NewRun {
  if (!message) throw new InvalidArgumentError(prefix, 'is required')
  const run = parse(newRunSchema, message, prefix)
  return {
    id: newRunId(),
    queue: run.queue,
    job: run.job,
    payloadJson: checkJsonText(`${prefix}.payload_json`, message.payloadJson, config.maxPayloadBytes),
    idempotencyKey: run.idempotencyKey || undefined,
    idempotencyTtlMs: run.idempotencyTtlMs || config.idempotencyTtlMs,
    delayMs: run.delayMs,
    runAt: run.runAt,
    priority: run.priority,
    maxAttempts: run.maxAttempts || config.defaultMaxAttempts,
    traceContext: Object.keys(run.traceContext).length > 0 ? run.traceContext : undefined,
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

/** A validated WorkerHello. */
export interface WorkerAnnouncement {
  namespace: string
  workerId: string
  queues: string[]
  jobs: string[]
  slots: number
  leaseMs: number
  sdk: string
}

/** What a worker says about itself, on the stream (hello) and in ClaimTask alike. */
const workerFields = {
  namespace: namespaceSchema,
  workerId: z.string().max(limits.workerIdMaxLength, `must be at most ${limits.workerIdMaxLength} characters`),
  queues: nameListSchema(limits.queueMaxLength, limits.queuesPerWorkerMax),
  jobs: nameListSchema(limits.jobMaxLength, limits.jobsPerWorkerMax),
  leaseMs: leaseMsSchema,
}

const workerHelloSchema = z.object({
  ...workerFields,
  slots: z.number().int().max(limits.slotsMax, `must be at most ${limits.slotsMax}`),
  sdk: z.string().max(200, 'must be at most 200 characters'),
})

export function parseWorkerHello(hello: WorkerHello, config: Limits, fallbackWorkerId: () => string): WorkerAnnouncement {
  const parsed = parse(workerHelloSchema, hello, 'hello')
  return { ...parsed, workerId: parsed.workerId || fallbackWorkerId(), leaseMs: parsed.leaseMs || config.leaseMs }
}

const claimTaskSchema = z.object({
  ...workerFields,
  maxTasks: z.number().int().max(limits.claimBatchMax, `must be at most ${limits.claimBatchMax}`),
  waitMs: z.number().int().max(limits.claimWaitMaxMs, `must be at most ${limits.claimWaitMaxMs}`),
})

export function parseClaimTask(
  request: ClaimTaskRequest,
  config: Limits,
  fallbackWorkerId: () => string,
): Omit<WorkerAnnouncement, 'slots' | 'sdk'> & { maxTasks: number; waitMs: number } {
  const parsed = parse(claimTaskSchema, request, '')
  return {
    ...parsed,
    workerId: parsed.workerId || fallbackWorkerId(),
    leaseMs: parsed.leaseMs || config.leaseMs,
    maxTasks: parsed.maxTasks || 1,
  }
}

const leaseRefSchema = z.object({ runId: uuidSchema, leaseToken: uuidSchema })

function parseLeaseRef(request: LeaseRefMessage, prefix: string): LeaseRef {
  return parse(leaseRefSchema, request, prefix)
}

const completeStepSchema = leaseRefSchema.extend({
  stepId: nameSchema(limits.stepIdMaxLength),
  durationMs: z.number().int(),
  kind: z
    .enum(StepKind)
    .refine((kind) => kind === StepKind.STEP_KIND_UNSPECIFIED || kind === StepKind.STEP_KIND_RUN || kind === StepKind.STEP_KIND_SEND, {
      message: 'must be STEP_KIND_RUN or STEP_KIND_SEND (sleeps and waits go through SuspendRun)',
    }),
})

export function parseCompleteStep(request: CompleteStepRequest, config: Limits, prefix = ''): StepCompletion {
  const parsed = parse(completeStepSchema, request, prefix)
  const resultField = prefix ? `${prefix}.result_json` : 'result_json'
  return {
    runId: parsed.runId,
    leaseToken: parsed.leaseToken,
    stepId: parsed.stepId,
    durationMs: parsed.durationMs,
    kind: parsed.kind === StepKind.STEP_KIND_SEND ? 'send' : 'run',
    resultJson: request.resultJson === undefined ? undefined : checkJsonText(resultField, request.resultJson, config.maxPayloadBytes),
  }
}

const durationMsSchema = (minimum: number) =>
  z
    .number()
    .int()
    .min(minimum, minimum === 0 ? 'must not be negative' : `must be at least ${minimum}`)
    .max(limits.delayMaxMs, `must be at most ${limits.delayMaxMs} (ten years)`)

const suspendRunSchema = leaseRefSchema.extend({ stepId: nameSchema(limits.stepIdMaxLength) })

const sleepUntilSchema = z.object({ wakeAt: z.date('is required') })

const eventWaitSchema = z.object({
  name: nameSchema(limits.eventNameMaxLength),
  timeoutMs: durationMsSchema(1),
  lookbackMs: durationMsSchema(0),
})

export function parseSuspendRun(request: SuspendRunRequest, config: Limits, prefix = ''): Suspension {
  const lease = parse(suspendRunSchema, request, prefix)
  const field = (name: string) => (prefix ? `${prefix}.${name}` : name)
  const { wait } = request
  // The oneof's members are fields of the request itself: errors name `sleep.…` or `event.…`.
  if (!wait) throw new InvalidArgumentError(field('wait'), 'must set sleep or event')
  if (wait.$case === 'sleep')
    return { ...lease, wait: { kind: 'sleep', wakeAt: parse(sleepUntilSchema, wait.sleep, field('sleep')).wakeAt } }
  const event = parse(eventWaitSchema, wait.event, field('event'))
  return {
    ...lease,
    wait: {
      kind: 'event',
      name: event.name,
      matchJson: checkJsonObject(field('event.match_json'), wait.event.matchJson, config.maxPayloadBytes),
      timeoutMs: event.timeoutMs,
      lookbackMs: event.lookbackMs,
    },
  }
}

/** JSON text that must be an object; empty means {}. */
function checkJsonObject(field: string, text: string, maxBytes: number): string {
  if (text === '') return '{}'
  const checked = checkJsonText(field, text, maxBytes)
  if (!/^\s*\{/.test(checked)) throw new InvalidArgumentError(field, 'must be a JSON object')
  return checked
}

const sendEventSchema = z.object({
  namespace: namespaceSchema,
  id: z.string().max(limits.eventIdMaxLength, `must be at most ${limits.eventIdMaxLength} characters`),
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
  return parse(cancelRunSchema, request, '')
}

const listRunsSchema = z.object({
  namespace: namespaceSchema,
  queue: z.string().max(limits.queueMaxLength, `must be at most ${limits.queueMaxLength} characters`),
  job: z.string().max(limits.jobMaxLength, `must be at most ${limits.jobMaxLength} characters`),
  createdAfter: z.date().optional(),
  createdBefore: z.date().optional(),
  limit: z.number().int().max(limits.listRunsLimitMax, `must be at most ${limits.listRunsLimitMax}`),
  // A cursor is the id of the last run of a page.
  cursor: z.string().refine((cursor) => cursor === '' || uuidPattern.test(cursor), 'is not a cursor returned by ListRuns'),
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
  }
}

export function parseCompleteRun(request: CompleteRunRequest, config: Limits, prefix = ''): LeaseRef & { resultJson: string | undefined } {
  const lease = parseLeaseRef(request, prefix)
  const resultField = prefix ? `${prefix}.result_json` : 'result_json'
  return {
    ...lease,
    resultJson: request.resultJson === undefined ? undefined : checkJsonText(resultField, request.resultJson, config.maxPayloadBytes),
  }
}

function truncate(text: string, maxLength: number): string {
  return text.length <= maxLength ? text : text.slice(0, maxLength - 1) + '…'
}

const failRunSchema = leaseRefSchema.extend({
  error: z.object({ name: z.string(), message: z.string().min(1, 'must not be empty'), stack: z.string() }, 'is required'),
  nonRetriable: z.boolean(),
  retryDelayMs: z
    .number()
    .int()
    .min(0, 'must not be negative')
    .max(limits.retryDelayMaxMs, `must be at most ${limits.retryDelayMaxMs}`)
    .optional(),
  failedStepId: z.string().max(limits.stepIdMaxLength, `must be at most ${limits.stepIdMaxLength} characters`),
  failedStepDurationMs: z.number().int(),
})

export function parseFailRun(request: FailRunRequest, prefix = ''): RunFailure {
  const parsed = parse(failRunSchema, request, prefix)
  const error: ErrorInfo = {
    name: truncate(parsed.error.name || 'Error', 200),
    message: truncate(parsed.error.message, limits.errorTextMaxLength),
    ...(parsed.error.stack ? { stack: truncate(parsed.error.stack, limits.errorTextMaxLength) } : {}),
  }
  return {
    runId: parsed.runId,
    leaseToken: parsed.leaseToken,
    error,
    isRetriable: !parsed.nonRetriable,
    retryDelayMs: parsed.retryDelayMs,
    failedStep: parsed.failedStepId ? { stepId: parsed.failedStepId, durationMs: parsed.failedStepDurationMs } : undefined,
  }
}

export function parseReleaseRun(request: ReleaseRunRequest, prefix = ''): LeaseRef {
  return parseLeaseRef(request, prefix)
}

const heartbeatSchema = z.object({
  leases: z
    .array(leaseRefSchema)
    .min(1, 'must name at least one lease')
    .max(limits.heartbeatLeasesMax, `must name at most ${limits.heartbeatLeasesMax} leases`),
  leaseMs: leaseMsSchema,
})

export function parseHeartbeat(request: HeartbeatRequest, defaultLeaseMs: number, prefix = ''): { leases: LeaseRef[]; leaseMs: number } {
  const parsed = parse(heartbeatSchema, request, prefix)
  return { leases: parsed.leases, leaseMs: parsed.leaseMs || defaultLeaseMs }
}
