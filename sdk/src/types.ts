/** Public types of the SDK. None of them is a protobuf message. */

import type { FlowWait } from './flow.js'

/** Where a run is in its lifecycle. A queued run may have a future `availableAt` (delay or retry backoff). */
export type RunStatus = 'queued' | 'running' | 'waiting' | 'completed' | 'failed' | 'cancelled'

/** An error as the server stores it. */
export interface RunErrorInfo {
  name: string
  message: string
  stack?: string
}

/** Which step function recorded a step. */
export type StepKind = 'run' | 'sleep' | 'wait' | 'send' | 'state' | 'invoke'

/** One step of a run. */
export interface StepInfo {
  /** Step id, with the ":n" suffix for repeats within one execution. */
  id: string
  kind: StepKind
  /** 'waiting': a sleep, event wait or child run in progress. */
  status: 'completed' | 'failed' | 'waiting'
  /**
   * The step's result (JSON round-tripped) when completed: what `fn` returned
   * for `run`; the event (or null on timeout) for `wait`; `{ id }` of the event
   * sent for `send`; null for `sleep`; for `state`, the record of a State
   * Store operation made in the run; for `invoke`, the child's outcome
   * (`{ childRunId, status, result }` or `{ childRunId, status, error }`).
   */
  result: unknown
  error: RunErrorInfo | undefined
  /** The attempt that recorded it. */
  attempt: number
  startedAt: Date | undefined
  finishedAt: Date | undefined
  /** For sleeps, waits and invokes: when the sleep ends or the wait times out. */
  wakeAt: Date | undefined
}

/** A child run (started by `step.invoke`) as its parent lists it. */
export interface ChildRunInfo {
  runId: string
  /** The parent's step that started it. */
  stepId: string
  queue: string
  job: string
  status: RunStatus
}

/** One attempt of a run. */
export interface AttemptInfo {
  /** 1-based attempt number. */
  attempt: number
  outcome: 'running' | 'completed' | 'failed' | 'lease_expired' | 'cancelled'
  startedAt: Date | undefined
  finishedAt: Date | undefined
  error: RunErrorInfo | undefined
}

/** A run: one enqueued execution of a job. */
export interface Run<TResult = unknown, TPayload = unknown> {
  id: string
  namespace: string
  queue: string
  job: string
  status: RunStatus
  payload: TPayload
  /** What the handler returned, once completed. */
  result: TResult | undefined
  /** The last error: while retrying, of the last failed attempt; when failed, the final one. */
  error: RunErrorInfo | undefined
  /** Attempts started so far. */
  attempts: number
  maxAttempts: number
  priority: number
  createdAt: Date | undefined
  /** When the run is (or was) ready to be claimed. */
  availableAt: Date | undefined
  /** When the current or last attempt started. */
  startedAt: Date | undefined
  finishedAt: Date | undefined
  /** The idempotency key, while it still deduplicates. */
  idempotencyKey: string | undefined
  /** Steps recorded so far, in order. */
  steps: StepInfo[]
  /** Every attempt, oldest first; the gaps between them show the retry backoff. */
  attemptHistory: AttemptInfo[]
  /** For a run made by `rerunRun`: the run it reran. */
  rerunOf: string | undefined
  /** For a run made by `replayRun`: the run it was forked from, and the step it executes from. */
  forkedFrom: { runId: string; stepId: string } | undefined
  /** For a run a schedule fired: the schedule's id. */
  scheduleId: string | undefined
  /** For a run a schedule fired: the tick it was fired for (a trigger's: the instant of the trigger). */
  scheduledAt: Date | undefined
  /** For a child run (started by another run's `step.invoke`): the parent's id. */
  parentRunId: string | undefined
  /** For a child run: the parent's step that waits for it. */
  parentStepId: string | undefined
  /** The child runs this run started, oldest first (filled by `getRun` and `waitForRun`; empty in `listRuns`). */
  children: ChildRunInfo[]
  /** Under flow control: the key value its job's concurrency, rate limit and fairness apply to. */
  concurrencyKey: string | undefined
  /** For a ready run held back by a flow-control limit (from `getRun`): which, counted when read. */
  flowWait: FlowWait | undefined
}

/** What `enqueue` returns. */
export interface EnqueuedRun {
  /** Id of the run (the existing one when deduplicated). */
  id: string
  /** True when the idempotency key matched a live run and nothing new was enqueued. */
  deduplicated: boolean
}

/** An event as received: what `step.waitForEvent` returns. */
export interface ReceivedEvent<TData = unknown> {
  id: string
  name: string
  data: TData
  receivedAt: Date
}

/** What `sendEvent` returns. */
export interface SentEvent {
  /** The event's id (given, or chosen by the server). */
  id: string
  /** True when an event with this id was already stored: nothing was sent again. */
  deduplicated: boolean
  /** How many waiting runs the event resumed. */
  resumedRuns: number
}

/** Filters and paging of `listRuns`. */
export interface ListRunsOptions {
  queue?: string
  job?: string
  status?: RunStatus
  /** Runs created at or after this instant. */
  createdAfter?: Date
  /** Runs created before this instant. */
  createdBefore?: Date
  /** Page size, 1 to 500. Default 50. */
  limit?: number
  /** `nextCursor` of the previous page. */
  cursor?: string
  /** Only this run. */
  runId?: string
  /** Only the run holding this idempotency key (while the key deduplicates). */
  idempotencyKey?: string
  /** Only runs whose payload contains this value (JSON containment: `{ customer: { id: 'c_1' } }` matches nested values). */
  payloadMatch?: Record<string, unknown>
  /** Only runs made from this run by `rerunRun` or `replayRun`. */
  sourceRunId?: string
  /** Only runs fired by this schedule. */
  scheduleId?: string
  /** Only the child runs of this run (`step.invoke`). */
  parentRunId?: string
}

/** A page of runs, newest first. Runs in a page carry no steps or attempt history (see `getRun`). */
export interface RunPage {
  runs: Run[]
  /** Pass as `cursor` for the next page; undefined on the last page. */
  nextCursor: string | undefined
}
