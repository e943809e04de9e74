import { fromFlowWaitMessage } from './flow.js'
import {
  AttemptOutcome,
  type Event as EventMessage,
  type Run as RunMessage,
  type RunError,
  RunOrigin,
  RunStatus as RunStatusMessage,
  StepKind,
  StepStatus,
} from '@stackshift/proto/run'
import { decodeJson } from './json.js'
import type { AttemptInfo, ReceivedEvent, Run, RunErrorInfo, RunStatus, StepInfo } from './types.js'

/* Protobuf messages to the SDK's public types. */

const runStatuses: Partial<Record<RunStatusMessage, RunStatus>> = {
  [RunStatusMessage.RUN_STATUS_QUEUED]: 'queued',
  [RunStatusMessage.RUN_STATUS_RUNNING]: 'running',
  [RunStatusMessage.RUN_STATUS_WAITING]: 'waiting',
  [RunStatusMessage.RUN_STATUS_COMPLETED]: 'completed',
  [RunStatusMessage.RUN_STATUS_FAILED]: 'failed',
  [RunStatusMessage.RUN_STATUS_CANCELLED]: 'cancelled',
}

const runStatusMessages = new Map<RunStatus, RunStatusMessage>([
  ['queued', RunStatusMessage.RUN_STATUS_QUEUED],
  ['running', RunStatusMessage.RUN_STATUS_RUNNING],
  ['waiting', RunStatusMessage.RUN_STATUS_WAITING],
  ['completed', RunStatusMessage.RUN_STATUS_COMPLETED],
  ['failed', RunStatusMessage.RUN_STATUS_FAILED],
  ['cancelled', RunStatusMessage.RUN_STATUS_CANCELLED],
])

/** A status as the protocol spells it, for filters. */
export function toRunStatusMessage(status: RunStatus): RunStatusMessage {
  const message = runStatusMessages.get(status)
  if (message === undefined) throw new TypeError(`unknown run status "${status}"`)
  return message
}

const stepStatuses: Partial<Record<StepStatus, StepInfo['status']>> = {
  [StepStatus.STEP_STATUS_COMPLETED]: 'completed',
  [StepStatus.STEP_STATUS_FAILED]: 'failed',
  [StepStatus.STEP_STATUS_WAITING]: 'waiting',
}

const stepKinds: Partial<Record<StepKind, StepInfo['kind']>> = {
  [StepKind.STEP_KIND_RUN]: 'run',
  [StepKind.STEP_KIND_SLEEP]: 'sleep',
  [StepKind.STEP_KIND_WAIT]: 'wait',
  [StepKind.STEP_KIND_SEND]: 'send',
  [StepKind.STEP_KIND_STATE]: 'state',
  [StepKind.STEP_KIND_INVOKE]: 'invoke',
}

const attemptOutcomes: Partial<Record<AttemptOutcome, AttemptInfo['outcome']>> = {
  [AttemptOutcome.ATTEMPT_OUTCOME_RUNNING]: 'running',
  [AttemptOutcome.ATTEMPT_OUTCOME_COMPLETED]: 'completed',
  [AttemptOutcome.ATTEMPT_OUTCOME_FAILED]: 'failed',
  [AttemptOutcome.ATTEMPT_OUTCOME_LEASE_EXPIRED]: 'lease_expired',
  [AttemptOutcome.ATTEMPT_OUTCOME_CANCELLED]: 'cancelled',
}

function toErrorInfo(error: RunError | undefined): RunErrorInfo | undefined {
  if (!error) return undefined
  return { name: error.name, message: error.message, ...(error.stack ? { stack: error.stack } : {}) }
}

/** A status filter sent back by the server; undefined when unknown to this SDK. */
export function fromRunStatusMessage(status: RunStatusMessage): RunStatus | undefined {
  return runStatuses[status]
}

export function fromRunMessage<TResult, TPayload>(run: RunMessage): Run<TResult, TPayload> {
  const status = runStatuses[run.status]
  if (!status) throw new Error(`server sent unknown run status ${run.status}; upgrade @stackshift/sdk`)
  return {
    id: run.id,
    namespace: run.namespace,
    queue: run.queue,
    job: run.job,
    status,
    payload: decodeJson(run.payloadJson) as TPayload,
    result: decodeJson(run.resultJson) as TResult | undefined,
    error: toErrorInfo(run.error),
    attempts: run.attempts,
    maxAttempts: run.maxAttempts,
    priority: run.priority,
    createdAt: run.createdAt,
    availableAt: run.availableAt,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    idempotencyKey: run.idempotencyKey || undefined,
    steps: run.steps.map((step) => ({
      id: step.id,
      kind: stepKinds[step.kind] ?? 'run',
      status: stepStatuses[step.status] ?? 'failed',
      result: decodeJson(step.resultJson),
      error: toErrorInfo(step.error),
      attempt: step.attempt,
      startedAt: step.startedAt,
      finishedAt: step.finishedAt,
      wakeAt: step.wakeAt,
    })),
    attemptHistory: run.attemptHistory.map((attempt) => ({
      attempt: attempt.attempt,
      outcome: attemptOutcomes[attempt.outcome] ?? 'failed',
      startedAt: attempt.startedAt,
      finishedAt: attempt.finishedAt,
      error: toErrorInfo(attempt.error),
    })),
    rerunOf: run.origin === RunOrigin.RUN_ORIGIN_RERUN ? run.sourceRunId : undefined,
    forkedFrom: run.origin === RunOrigin.RUN_ORIGIN_REPLAY ? { runId: run.sourceRunId, stepId: run.replayedFromStepId } : undefined,
    scheduleId: run.scheduleId || undefined,
    scheduledAt: run.scheduledAt,
    parentRunId: run.parentRunId || undefined,
    parentStepId: run.parentStepId || undefined,
    children: run.children.map((child) => ({
      runId: child.runId,
      stepId: child.stepId,
      queue: child.queue,
      job: child.job,
      status: runStatuses[child.status] ?? 'queued',
    })),
    concurrencyKey: run.concurrencyKey,
    flowWait: fromFlowWaitMessage(run.flowWait),
  }
}

export function fromEventMessage<TData>(event: EventMessage): ReceivedEvent<TData> {
  return { id: event.id, name: event.name, data: decodeJson(event.dataJson) as TData, receivedAt: event.receivedAt ?? new Date(0) }
}

/** A wait step's memoized result (JSON with receivedAt as a string) as waitForEvent returns it. */
export function fromEventJson<TData>(json: string | undefined): ReceivedEvent<TData> | null {
  const value = decodeJson(json) as (Omit<ReceivedEvent<TData>, 'receivedAt'> & { receivedAt: string }) | null | undefined
  if (value === null || value === undefined) return null
  return { ...value, receivedAt: new Date(value.receivedAt) }
}
