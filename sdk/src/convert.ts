import { decodeJson } from './json.js'
import type { AttemptInfo, Run, RunErrorInfo, RunStatus } from './types.js'
import {
  AttemptOutcome,
  type Run as RunMessage,
  type RunError,
  RunStatus as RunStatusMessage,
  StepStatus,
} from './gen/stackshift/jobs/v1/run.js'

/* Protobuf messages to the SDK's public types. */

const runStatuses: Partial<Record<RunStatusMessage, RunStatus>> = {
  [RunStatusMessage.RUN_STATUS_QUEUED]: 'queued',
  [RunStatusMessage.RUN_STATUS_RUNNING]: 'running',
  [RunStatusMessage.RUN_STATUS_WAITING]: 'waiting',
  [RunStatusMessage.RUN_STATUS_COMPLETED]: 'completed',
  [RunStatusMessage.RUN_STATUS_FAILED]: 'failed',
  [RunStatusMessage.RUN_STATUS_CANCELLED]: 'cancelled',
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
      status: step.status === StepStatus.STEP_STATUS_COMPLETED ? 'completed' : 'failed',
      result: decodeJson(step.resultJson),
      error: toErrorInfo(step.error),
      attempt: step.attempt,
      startedAt: step.startedAt,
      finishedAt: step.finishedAt,
    })),
    attemptHistory: run.attemptHistory.map((attempt) => ({
      attempt: attempt.attempt,
      outcome: attemptOutcomes[attempt.outcome] ?? 'failed',
      startedAt: attempt.startedAt,
      finishedAt: attempt.finishedAt,
      error: toErrorInfo(attempt.error),
    })),
  }
}
