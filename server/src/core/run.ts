/** Domain types for runs, steps and attempts, independent of protobuf and SQL. */

import type { FlowWait } from './flow-wait.js'

/**
 * Statuses as stored. 'scheduled' is the stored form of a QUEUED run whose
 * available_at is in the future; it keeps such runs out of the claim index.
 */
export type StoredRunStatus = 'queued' | 'scheduled' | 'running' | 'waiting' | 'completed' | 'failed' | 'cancelled'

/** Statuses as clients see them (DESIGN.md's lifecycle). */
export type RunStatus = 'queued' | 'running' | 'waiting' | 'completed' | 'failed' | 'cancelled'

export const finishedStatuses: ReadonlySet<RunStatus> = new Set(['completed', 'failed', 'cancelled'])

export function publicStatus(status: StoredRunStatus): RunStatus {
  return status === 'scheduled' ? 'queued' : status
}

/** An error as stored and reported: what a handler threw, or what the server concluded. */
export interface ErrorInfo {
  name: string
  message: string
  stack?: string
}

/** A run to insert, validated. */
export interface NewRun {
  id: string
  queue: string
  job: string
  payloadJson: string
  /** Size of the payload as received, in bytes of JSON text; claims are sized by it. */
  payloadBytes: number
  idempotencyKey: string | undefined
  idempotencyTtlMs: number
  delayMs: number
  runAt: Date | undefined
  priority: number
  maxAttempts: number
  traceContext: TraceContext | undefined
  /** The key value for the job's flow-control policies, given at enqueue (instead of the one at the policies' payload path). */
  concurrencyKey?: string
}

/** A W3C Trace Context carrier (traceparent, tracestate, baggage). */
export type TraceContext = Record<string, string>

/** A completed step's memoized result, handed to a worker with the task. */
export interface MemoEntry {
  stepId: string
  /** JSON text; undefined when the step returned nothing. */
  resultJson: string | undefined
}

/** A run leased to a worker by a claim. */
export interface ClaimedRun {
  id: string
  namespace: string
  queue: string
  job: string
  payloadJson: string
  attempt: number
  maxAttempts: number
  leaseToken: string
  leaseExpiresAt: Date
  createdAt: Date
  availableAt: Date
  memo: MemoEntry[]
  traceContext: TraceContext | undefined
  /** For a run a schedule fired: the schedule and the tick. */
  schedule?: ScheduleTick | undefined
}

/** The schedule that fired a run, and the tick it fired it for. */
export interface ScheduleTick {
  id: string
  scheduledAt: Date
}

/** A lease a worker holds, as it names it in writes. */
export interface LeaseRef {
  runId: string
  leaseToken: string
}

/**
 * A worker's write about a leased run, with the namespace its writer may act
 * in: the stream's, or the API key's (`*`: any). The write finds no lease on
 * a run of another namespace, so a key of one namespace cannot touch another
 * namespace's runs even holding a lease token of theirs.
 */
export type Fenced<Write extends LeaseRef> = Write & { namespace: string }

/** Identifies one lease: a run id alone is ambiguous when a stale and a current write meet in one batch. */
export function leaseKey(runId: string, leaseToken: string): string {
  return `${runId}/${leaseToken}`
}

export type StepStatus = 'completed' | 'failed' | 'waiting'

/** Which step function recorded a step. */
export type StepKind = 'run' | 'sleep' | 'wait' | 'send' | 'state' | 'invoke'

/** Identifies a step of a run. */
export function stepKey(runId: string, stepId: string): string {
  return `${runId}/${stepId}`
}

/** A step result a worker reports under its lease. */
export interface StepCompletion extends LeaseRef {
  stepId: string
  /** JSON text; undefined when the step returned nothing. */
  resultJson: string | undefined
  durationMs: number
  /** 'run' for step.run; 'send' for step.sendEvent. Sleeps and waits are recorded by suspensions. */
  kind: 'run' | 'send'
}

export interface StepRecord {
  id: string
  kind: StepKind
  status: StepStatus
  resultJson: string | undefined
  error: ErrorInfo | undefined
  attempt: number
  startedAt: Date
  finishedAt: Date | undefined
  /** For sleeps and waits: when the sleep ends or the wait times out. */
  wakeAt: Date | undefined
  /** For an event wait in progress: what it waits for (the event's name, and the match as JSON text). */
  waitingFor: { eventName: string; matchJson: string } | undefined
}

/** An event as stored. */
export interface EventRecord {
  id: string
  name: string
  dataJson: string
  receivedAt: Date
}

/** A sleep, an event wait or child runs to start and wait for, as a worker asks, validated. */
export interface Suspension extends LeaseRef {
  stepId: string
  wait:
    | { kind: 'sleep'; wakeAt: Date }
    | { kind: 'event'; name: string; matchJson: string; timeoutMs: number; lookbackMs: number }
    | { kind: 'invoke'; children: ChildRunRequest[] }
}

/** A child run a parent starts with step.invoke, validated. */
export interface ChildRunRequest {
  /** The parent's step that waits for the child. */
  stepId: string
  queue: string
  job: string
  payloadJson: string
  /** Size of the payload as received, in bytes of JSON text. */
  payloadBytes: number
  /** How long the parent waits for the child. */
  timeoutMs: number
  maxAttempts: number
  priority: number
}

/** What came of a suspension: the run waits, or the step completed at once (with the event that matched). */
export type SuspensionOutcome = { suspended: true } | { suspended: false; event: EventRecord | undefined }

/** Filters of ListRuns, validated. */
export interface RunFilter {
  namespace: string
  queue: string | undefined
  job: string | undefined
  status: RunStatus | undefined
  createdAfter: Date | undefined
  createdBefore: Date | undefined
  limit: number
  /** Id of the last run of the previous page. */
  afterId: string | undefined
  /** Only this run. */
  runId: string | undefined
  /** Only the run holding this idempotency key. */
  idempotencyKey: string | undefined
  /** Only runs whose payload contains this JSON object (text). */
  payloadMatchJson: string | undefined
  /** Only runs made from this run (reruns and replays). */
  sourceRunId: string | undefined
  /** Only runs fired by this schedule. */
  scheduleId: string | undefined
  /** Only the child runs of this run (step.invoke). */
  parentRunId: string | undefined
}

/**
 * How a run came to be: enqueued, made by an operator from another run, fired
 * by a schedule, or started by another run's step.invoke.
 */
export type RunOrigin = 'enqueue' | 'rerun' | 'replay' | 'schedule' | 'invoke'

export type AttemptOutcome = 'running' | 'completed' | 'failed' | 'lease_expired' | 'cancelled'

export interface AttemptRecord {
  attempt: number
  outcome: AttemptOutcome
  startedAt: Date | undefined
  finishedAt: Date | undefined
  error: ErrorInfo | undefined
}

/** A run as stored, without steps and attempt history. */
export interface RunRecord {
  id: string
  namespace: string
  queue: string
  job: string
  status: StoredRunStatus
  payloadJson: string
  resultJson: string | undefined
  error: ErrorInfo | undefined
  attempts: number
  maxAttempts: number
  priority: number
  createdAt: Date
  availableAt: Date
  startedAt: Date | undefined
  finishedAt: Date | undefined
  idempotencyKey: string | undefined
  traceContext: TraceContext | undefined
  origin: RunOrigin
  /** For a rerun or a replay: the run it was made from. */
  sourceRunId: string | undefined
  /** For a replay: the step it executes from. */
  replayedFromStepId: string | undefined
  /** For a run a schedule fired: the schedule and the tick. */
  schedule: ScheduleTick | undefined
  /** For a child run (origin 'invoke'): the run that started it. */
  parentRunId: string | undefined
  /** For a child run: the parent's step that waits for it. */
  parentStepId: string | undefined
  /** Under flow control: the key value its job's policies apply to. */
  concurrencyKey: string | undefined
}

/** A child run as its parent lists it. */
export interface ChildRunSummary {
  runId: string
  stepId: string
  queue: string
  job: string
  status: StoredRunStatus
}

/** A run with its steps, every attempt, and its child runs. */
export interface RunDetails extends RunRecord {
  steps: StepRecord[]
  attemptHistory: AttemptRecord[]
  children: ChildRunSummary[]
  /** For a ready run held back by a flow-control limit: which, as counted when read. */
  flowWait: FlowWait | undefined
}

/**
 * The attempt history: attempts that did not complete are stored as rows; the
 * current or final attempt is described by the run itself.
 */
export function buildAttemptHistory(run: RunRecord, ended: readonly AttemptRecord[]): AttemptRecord[] {
  const history = [...ended].sort((a, b) => a.attempt - b.attempt)
  const last = history.at(-1)
  if (run.attempts > 0 && (!last || last.attempt < run.attempts)) {
    const outcome: AttemptOutcome =
      run.status === 'running' ? 'running' : run.status === 'completed' ? 'completed' : run.status === 'cancelled' ? 'cancelled' : 'failed'
    history.push({
      attempt: run.attempts,
      outcome,
      startedAt: run.startedAt,
      finishedAt: outcome === 'running' ? undefined : run.finishedAt,
      error: outcome === 'failed' ? run.error : undefined,
    })
  }
  return history
}

/** A live State Store entry. */
export interface StateEntry {
  key: string
  /** JSON text. */
  valueJson: string
  version: number
  expiresAt: Date | undefined
  updatedAt: Date
}

/** A held lock. */
export interface LockRecord {
  key: string
  lockId: string
  fencingToken: number
  expiresAt: Date
}
