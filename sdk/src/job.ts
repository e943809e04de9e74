import type { Logger } from './logger.js'

/** Durable steps available to a handler. */
export interface StepTools {
  /**
   * Runs `fn` once per run: if step `id` completed in an earlier attempt, returns
   * its stored result without calling `fn`. Otherwise calls `fn`, stores the
   * result (JSON) on the server, waits for the acknowledgement, and returns it.
   * The value returned is the JSON round trip of what `fn` returned, the same
   * on the first execution and on replay (a Date comes back as a string).
   *
   * Calling the same id again within one execution (a loop) names the n-th
   * repeat `id:n`: "x", "x:1", "x:2".
   */
  run<T>(id: string, fn: () => T | Promise<T>): Promise<Awaited<T>>
}

/** Facts about the run being executed. */
export interface RunInfo {
  id: string
  job: string
  queue: string
  namespace: string
  /** 1-based number of this attempt. */
  attempt: number
  /** Attempts allowed; a failure on the last one is final. */
  maxAttempts: number
  createdAt: Date | undefined
}

/** What a handler receives. */
export interface JobContext<TPayload> {
  /** The payload given at enqueue (JSON round-tripped). */
  payload: TPayload
  /** Durable, memoized steps. */
  step: StepTools
  /**
   * Aborted when this attempt should stop: the lease was lost (the run may be
   * running elsewhere), the run was cancelled, or the worker is shutting down
   * and handed the run back. `signal.reason` says which. Pass it to fetch and
   * other cancellable calls.
   */
  signal: AbortSignal
  run: RunInfo
  /** The worker's logger, with the run id attached. */
  logger: Logger
}

/** A job's handler. What it returns (JSON) becomes the run's result. */
export type JobHandler<TPayload = unknown, TResult = unknown> = (context: JobContext<TPayload>) => Promise<TResult> | TResult

/** A registered job. */
export interface JobDefinition<TPayload = unknown, TResult = unknown> {
  readonly name: string
  readonly handler: JobHandler<TPayload, TResult>
}
