import { z } from 'zod'
import { InvalidArgumentError, ResourceExhaustedError } from '../core/errors.js'
import { checkJsonObject, checkJsonText, checkJsonValue } from '../core/json-text.js'
import { defaultQueue, limits } from '../core/limits.js'
import type { ChildRunRequest, ErrorInfo, LeaseRef, StepCompletion, Suspension } from '../core/run.js'
import type { RunFailure } from '../operations/lease-writes.js'
import { StepKind } from '@stackshift/proto/run'
import type {
  ClaimTaskRequest,
  CompleteRunRequest,
  CompleteStepRequest,
  FailRunRequest,
  HeartbeatRequest,
  LeaseRef as LeaseRefMessage,
  ReleaseRunRequest,
  InvokeChildren,
  SuspendRunRequest,
  WorkerHello,
} from '@stackshift/proto/worker-service'
import {
  type RequestLimits as Limits,
  instantSchema,
  leaseMsSchema,
  nameListSchema,
  nameSchema,
  namespaceSchema,
  parse,
  textSchema,
  toDiagnosticText,
  uuidSchema,
} from './validation.js'

/** WorkerService requests (on the stream and unary alike) as validated domain values. */

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
  workerId: textSchema(limits.workerIdMaxLength),
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

/** How long a step took, as measured by the worker; stored as a 32-bit integer. */
const stepDurationMsSchema = z.number().int().max(limits.stepDurationMaxMs, `must be at most ${limits.stepDurationMaxMs} (about 24.8 days)`)

const completeStepSchema = leaseRefSchema.extend({
  stepId: nameSchema(limits.stepIdMaxLength),
  durationMs: stepDurationMsSchema,
  kind: z
    .enum(StepKind)
    .refine((kind) => kind === StepKind.STEP_KIND_UNSPECIFIED || kind === StepKind.STEP_KIND_RUN || kind === StepKind.STEP_KIND_SEND, {
      error: 'must be STEP_KIND_RUN or STEP_KIND_SEND (sleeps and waits go through SuspendRun)',
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

const sleepUntilSchema = z.object({ wakeAt: instantSchema })

const eventWaitSchema = z.object({
  name: nameSchema(limits.eventNameMaxLength),
  timeoutMs: durationMsSchema(1),
  lookbackMs: durationMsSchema(0),
})

const childRunRequestSchema = z.object({
  stepId: nameSchema(limits.stepIdMaxLength),
  queue: z
    .string()
    .transform((value) => value || defaultQueue)
    .pipe(nameSchema(limits.queueMaxLength)),
  job: nameSchema(limits.jobMaxLength),
  timeoutMs: durationMsSchema(1),
  maxAttempts: z.number().int().max(limits.maxAttemptsMax, `must be at most ${limits.maxAttemptsMax}`),
  priority: z
    .number()
    .int()
    .min(limits.priorityMin, `must be at least ${limits.priorityMin}`)
    .max(limits.priorityMax, `must be at most ${limits.priorityMax}`),
})

/** The children of an `invoke`: errors name `invoke.children[i].…`. */
function parseInvokeChildren(invoke: InvokeChildren, stepId: string, config: Limits, field: (name: string) => string): ChildRunRequest[] {
  const { children } = invoke
  if (children.length === 0) throw new InvalidArgumentError(field('invoke.children'), 'must hold at least one child run')
  if (children.length > limits.invokeChildrenMax) {
    throw new ResourceExhaustedError(
      field('invoke.children'),
      `holds ${children.length} child runs; the limit is ${limits.invokeChildrenMax}`,
    )
  }
  const stepIds = new Set<string>()
  const parsed = children.map((child, index): ChildRunRequest => {
    const prefix = field(`invoke.children[${index}]`)
    const valid = parse(childRunRequestSchema, child, prefix)
    if (stepIds.has(valid.stepId)) throw new InvalidArgumentError(`${prefix}.step_id`, `repeats "${valid.stepId}"; step ids must differ`)
    stepIds.add(valid.stepId)
    const payload = checkJsonValue(`${prefix}.payload_json`, child.payloadJson, config.maxPayloadBytes)
    return {
      stepId: valid.stepId,
      queue: valid.queue,
      job: valid.job,
      payloadJson: payload.text,
      payloadBytes: payload.bytes,
      timeoutMs: valid.timeoutMs,
      maxAttempts: valid.maxAttempts || config.defaultMaxAttempts,
      priority: valid.priority,
    }
  })
  if (parsed[0]!.stepId !== stepId) {
    throw new InvalidArgumentError(field('step_id'), `must be the first child's step id ("${parsed[0]!.stepId}") for invoke`)
  }
  return parsed
}

export function parseSuspendRun(request: SuspendRunRequest, config: Limits, prefix = ''): Suspension {
  const lease = parse(suspendRunSchema, request, prefix)
  const field = (name: string) => (prefix ? `${prefix}.${name}` : name)
  const { wait } = request
  // The oneof's members are fields of the request itself: errors name `sleep.…`, `event.…` or `invoke.…`.
  if (!wait) throw new InvalidArgumentError(field('wait'), 'must set sleep, event or invoke')
  if (wait.$case === 'sleep')
    return { ...lease, wait: { kind: 'sleep', wakeAt: parse(sleepUntilSchema, wait.sleep, field('sleep')).wakeAt } }
  if (wait.$case === 'invoke') {
    return { ...lease, wait: { kind: 'invoke', children: parseInvokeChildren(wait.invoke, lease.stepId, config, field) } }
  }
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

export function parseCompleteRun(request: CompleteRunRequest, config: Limits, prefix = ''): LeaseRef & { resultJson: string | undefined } {
  const lease = parseLeaseRef(request, prefix)
  const resultField = prefix ? `${prefix}.result_json` : 'result_json'
  return {
    ...lease,
    resultJson: request.resultJson === undefined ? undefined : checkJsonText(resultField, request.resultJson, config.maxPayloadBytes),
  }
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
  failedStepId: textSchema(limits.stepIdMaxLength),
  failedStepDurationMs: stepDurationMsSchema,
})

export function parseFailRun(request: FailRunRequest, prefix = ''): RunFailure {
  const parsed = parse(failRunSchema, request, prefix)
  const error: ErrorInfo = {
    name: toDiagnosticText(parsed.error.name || 'Error', 200),
    message: toDiagnosticText(parsed.error.message, limits.errorTextMaxLength),
    ...(parsed.error.stack ? { stack: toDiagnosticText(parsed.error.stack, limits.errorTextMaxLength) } : {}),
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
