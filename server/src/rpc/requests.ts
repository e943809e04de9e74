import { z } from 'zod'
import type { ServerConfig } from '../config.js'
import { InvalidArgumentError, ResourceExhaustedError } from '../core/errors.js'
import { checkJsonText } from '../core/json-text.js'
import { defaultNamespace, defaultQueue, limits } from '../core/limits.js'
import { newRunId } from '../core/run-id.js'
import type { ErrorInfo, LeaseRef, NewRun } from '../core/run.js'
import type { StepCompletion } from '../db/queries/steps.js'
import type { RunFailure } from '../operations/lease-writes.js'
import type { NewRun as NewRunMessage } from '../gen/stackshift/jobs/v1/run_service.js'
import type {
  ClaimTaskRequest,
  CompleteRunRequest,
  CompleteStepRequest,
  FailRunRequest,
  HeartbeatRequest,
  LeaseRef as LeaseRefMessage,
  ReleaseRunRequest,
  WorkerHello,
} from '../gen/stackshift/jobs/v1/worker_service.js'

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

function nameSchema(maxLength: number) {
  return z
    .string()
    .min(1, 'must not be empty')
    .max(maxLength, `must be at most ${maxLength} characters`)
    .refine((value) => !controlCharacters.test(value), 'must not contain control characters')
}

const namespaceSchema = z
  .string()
  .max(limits.namespaceMaxLength, `must be at most ${limits.namespaceMaxLength} characters`)
  .regex(/^([A-Za-z0-9][A-Za-z0-9._-]*)?$/, 'must start with a letter or digit and contain only letters, digits, ".", "_" and "-"')
  .transform((value) => value || defaultNamespace)

const uuidSchema = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'must be a UUID')

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
function parse<T>(schema: z.ZodType<T>, value: unknown, prefix: string): T {
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
})

export function parseCompleteStep(request: CompleteStepRequest, config: Limits, prefix = ''): StepCompletion {
  const parsed = parse(completeStepSchema, request, prefix)
  const resultField = prefix ? `${prefix}.result_json` : 'result_json'
  return {
    ...parsed,
    resultJson: request.resultJson === undefined ? undefined : checkJsonText(resultField, request.resultJson, config.maxPayloadBytes),
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
