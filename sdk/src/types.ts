/** Public types of the SDK. None of them is a protobuf message. */

/** Where a run is in its lifecycle. A queued run may have a future `availableAt` (delay or retry backoff). */
export type RunStatus = 'queued' | 'running' | 'waiting' | 'completed' | 'failed' | 'cancelled'

/** An error as the server stores it. */
export interface RunErrorInfo {
  name: string
  message: string
  stack?: string
}

/** One memoized step of a run. */
export interface StepInfo {
  /** Step id, with the ":n" suffix for repeats within one execution. */
  id: string
  status: 'completed' | 'failed'
  /** The step's result (JSON round-tripped) when completed. */
  result: unknown
  error: RunErrorInfo | undefined
  /** The attempt that recorded it. */
  attempt: number
  startedAt: Date | undefined
  finishedAt: Date | undefined
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
}

/** What `enqueue` returns. */
export interface EnqueuedRun {
  /** Id of the run (the existing one when deduplicated). */
  id: string
  /** True when the idempotency key matched a live run and nothing new was enqueued. */
  deduplicated: boolean
}
