import { FlowLimit, type FlowWait as FlowWaitMessage } from '@stackshift/proto/job-service'
import type { FlowLimitKind, FlowWait } from '../core/flow-wait.js'
import { AttemptOutcome, type Event, type Run, type RunError, RunOrigin, RunStatus, StepKind, StepStatus } from '@stackshift/proto/run'
import { type FailRunResponse, RevokeReason, type RevokedLease, type SuspendRunResponse, type Task } from '@stackshift/proto/worker-service'
import type {
  AttemptOutcome as DomainAttemptOutcome,
  ClaimedRun,
  ErrorInfo,
  EventRecord,
  RunDetails,
  RunOrigin as DomainRunOrigin,
  RunRecord,
  RunStatus as DomainRunStatus,
  StepKind as DomainStepKind,
  StepStatus as DomainStepStatus,
  SuspensionOutcome,
} from '../core/run.js'
import { publicStatus } from '../core/run.js'
import type { FailureResult } from '../operations/attempt-endings.js'
import type { RevokedLease as DomainRevokedLease } from '../operations/lease-writes.js'

/* Domain values to protobuf messages and back; with the services, the request parsers and grpc-server.ts, the only modules that touch generated types. */

export const runStatusToProto: Record<DomainRunStatus, RunStatus> = {
  queued: RunStatus.RUN_STATUS_QUEUED,
  running: RunStatus.RUN_STATUS_RUNNING,
  waiting: RunStatus.RUN_STATUS_WAITING,
  completed: RunStatus.RUN_STATUS_COMPLETED,
  failed: RunStatus.RUN_STATUS_FAILED,
  cancelled: RunStatus.RUN_STATUS_CANCELLED,
}

/** A status filter as clients send it; UNSPECIFIED (and unknown values) mean any. */
export function runStatusFromProto(status: RunStatus): DomainRunStatus | undefined {
  return (Object.keys(runStatusToProto) as DomainRunStatus[]).find((key) => runStatusToProto[key] === status)
}

const stepStatusToProto: Record<DomainStepStatus, StepStatus> = {
  completed: StepStatus.STEP_STATUS_COMPLETED,
  failed: StepStatus.STEP_STATUS_FAILED,
  waiting: StepStatus.STEP_STATUS_WAITING,
}

const stepKindToProto: Record<DomainStepKind, StepKind> = {
  run: StepKind.STEP_KIND_RUN,
  sleep: StepKind.STEP_KIND_SLEEP,
  wait: StepKind.STEP_KIND_WAIT,
  send: StepKind.STEP_KIND_SEND,
  state: StepKind.STEP_KIND_STATE,
  invoke: StepKind.STEP_KIND_INVOKE,
}

const attemptOutcomeToProto: Record<DomainAttemptOutcome, AttemptOutcome> = {
  running: AttemptOutcome.ATTEMPT_OUTCOME_RUNNING,
  completed: AttemptOutcome.ATTEMPT_OUTCOME_COMPLETED,
  failed: AttemptOutcome.ATTEMPT_OUTCOME_FAILED,
  lease_expired: AttemptOutcome.ATTEMPT_OUTCOME_LEASE_EXPIRED,
  cancelled: AttemptOutcome.ATTEMPT_OUTCOME_CANCELLED,
}

const runOriginToProto: Record<DomainRunOrigin, RunOrigin> = {
  enqueue: RunOrigin.RUN_ORIGIN_UNSPECIFIED,
  rerun: RunOrigin.RUN_ORIGIN_RERUN,
  replay: RunOrigin.RUN_ORIGIN_REPLAY,
  schedule: RunOrigin.RUN_ORIGIN_SCHEDULE,
  invoke: RunOrigin.RUN_ORIGIN_INVOKE,
}

function toRunError(error: ErrorInfo | undefined): RunError | undefined {
  return error ? { name: error.name, message: error.message, stack: error.stack ?? '' } : undefined
}

/** A run; its steps, attempt history and children when it has them (GetRun), empty lists otherwise (ListRuns); its flow wait when read. */
export function toRunMessage(run: RunRecord | RunDetails | (RunRecord & { flowWait: FlowWait | undefined })): Run {
  const details =
    'steps' in run ? run : { steps: [], attemptHistory: [], children: [], flowWait: 'flowWait' in run ? run.flowWait : undefined }
  return {
    id: run.id,
    namespace: run.namespace,
    queue: run.queue,
    job: run.job,
    status: runStatusToProto[publicStatus(run.status)],
    payloadJson: run.payloadJson,
    resultJson: run.resultJson,
    error: toRunError(run.error),
    attempts: run.attempts,
    maxAttempts: run.maxAttempts,
    priority: run.priority,
    createdAt: run.createdAt,
    availableAt: run.availableAt,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    idempotencyKey: run.idempotencyKey ?? '',
    traceContext: run.traceContext ?? {},
    origin: runOriginToProto[run.origin],
    sourceRunId: run.sourceRunId ?? '',
    replayedFromStepId: run.replayedFromStepId ?? '',
    scheduleId: run.schedule?.id ?? '',
    scheduledAt: run.schedule?.scheduledAt,
    parentRunId: run.parentRunId ?? '',
    parentStepId: run.parentStepId ?? '',
    children: details.children.map((child) => ({
      runId: child.runId,
      stepId: child.stepId,
      queue: child.queue,
      job: child.job,
      status: runStatusToProto[publicStatus(child.status)],
    })),
    steps: details.steps.map((step) => ({
      id: step.id,
      kind: stepKindToProto[step.kind],
      status: stepStatusToProto[step.status],
      resultJson: step.resultJson,
      error: toRunError(step.error),
      attempt: step.attempt,
      startedAt: step.startedAt,
      finishedAt: step.finishedAt,
      wakeAt: step.wakeAt,
      waitEventName: step.waitingFor?.eventName ?? '',
      waitMatchJson: step.waitingFor?.matchJson ?? '',
    })),
    attemptHistory: details.attemptHistory.map((attempt) => ({
      attempt: attempt.attempt,
      outcome: attemptOutcomeToProto[attempt.outcome],
      startedAt: attempt.startedAt,
      finishedAt: attempt.finishedAt,
      error: toRunError(attempt.error),
    })),
    flowWait: details.flowWait && toFlowWaitMessage(details.flowWait),
    concurrencyKey: run.concurrencyKey,
  }
}

const flowLimitToProto: Record<FlowLimitKind, FlowLimit> = {
  concurrency: FlowLimit.FLOW_LIMIT_CONCURRENCY,
  rateLimit: FlowLimit.FLOW_LIMIT_RATE_LIMIT,
  queueConcurrency: FlowLimit.FLOW_LIMIT_QUEUE_CONCURRENCY,
}

function toFlowWaitMessage(wait: FlowWait): FlowWaitMessage {
  return {
    limit: flowLimitToProto[wait.limit],
    key: wait.key,
    used: wait.used,
    max: wait.max,
    opensAt: wait.opensAt,
    description: wait.description,
  }
}

export function toTaskMessage(run: ClaimedRun, leaseMs: number): Task {
  return {
    runId: run.id,
    namespace: run.namespace,
    queue: run.queue,
    job: run.job,
    payloadJson: run.payloadJson,
    attempt: run.attempt,
    maxAttempts: run.maxAttempts,
    leaseToken: run.leaseToken,
    leaseMs,
    steps: run.memo.map((entry) => ({ stepId: entry.stepId, resultJson: entry.resultJson })),
    createdAt: run.createdAt,
    availableAt: run.availableAt,
    leaseExpiresAt: run.leaseExpiresAt,
    traceContext: run.traceContext ?? {},
    scheduledAt: run.schedule?.scheduledAt,
    scheduleId: run.schedule?.id ?? '',
  }
}

export function toFailRunResponse(result: FailureResult): FailRunResponse {
  return {
    status: result.status === 'failed' ? RunStatus.RUN_STATUS_FAILED : RunStatus.RUN_STATUS_QUEUED,
    retryAt: result.retryAt,
  }
}

export function toRevokedLease(revoked: DomainRevokedLease): RevokedLease {
  return {
    runId: revoked.runId,
    reason: revoked.reason === 'cancelled' ? RevokeReason.REVOKE_REASON_CANCELLED : RevokeReason.REVOKE_REASON_LEASE_LOST,
  }
}

export function toEventMessage(event: EventRecord): Event {
  return { id: event.id, name: event.name, dataJson: event.dataJson, receivedAt: event.receivedAt }
}

export function toSuspendRunResponse(outcome: SuspensionOutcome): SuspendRunResponse {
  return { suspended: outcome.suspended, event: outcome.suspended || !outcome.event ? undefined : toEventMessage(outcome.event) }
}
