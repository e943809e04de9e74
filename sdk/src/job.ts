import type { Duration } from './duration.js'
import type { JobPolicies } from './flow.js'
import type { Logger } from './logger.js'
import type { StateStore } from './state.js'
import type { ReceivedEvent } from './types.js'

/** Options of `step.waitForEvent`. */
export interface WaitForEventOptions {
  /** Name of the event to wait for. */
  event: string
  /**
   * Correlation: the event's data must have these fields with equal values
   * (`{ orderId: payload.orderId }`); nested objects and arrays need only be
   * contained in the data's (JSON containment). Default: any event of the name.
   */
  match?: Record<string, unknown>
  /** How long to wait before the step returns null: milliseconds or a string like "1h". Required. */
  timeout: Duration
  /**
   * Also match events received up to this long before the run reached the
   * wait. Default 0: only events received since then.
   */
  lookback?: Duration
}

/** Options of `step.invoke`: the child run to start, and how long to wait for it. */
export interface InvokeOptions<TPayload = unknown> {
  /** The child's job. */
  job: string
  /** The child's queue. Default "default". */
  queue?: string
  /** The child's payload (JSON). Default null. */
  payload?: TPayload
  /**
   * How long the parent waits for the child: milliseconds or a string like
   * "10m". Required. When it passes, `step.invoke` throws a
   * ChildRunTimeoutError and the child is cancelled.
   */
  timeout: Duration
  /** Attempts allowed for the child. Default: the server's (5). */
  maxAttempts?: number
  /** The child's priority among ready runs of its queue, -1000 to 1000. Default 0. */
  priority?: number
}

/** An event sent from a job by `step.sendEvent`. */
export interface EventToSend {
  name: string
  data?: unknown
  /** Event id. Default: derived from the run and step ids, so a retried run sends nothing new. */
  id?: string
}

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

  /**
   * Suspends the run for `duration` (milliseconds or a string like "10m").
   * The run holds no lease and no worker slot meanwhile; it resumes on any
   * worker, replaying completed steps from the memo, and this call returns.
   */
  sleep(id: string, duration: Duration): Promise<void>

  /** Like `sleep`, until an instant. An instant in the past returns at once. */
  sleepUntil(id: string, until: Date | string | number): Promise<void>

  /**
   * Suspends the run until an event named `options.event` whose data matches
   * `options.match` arrives, and returns it; or returns null once `timeout`
   * passes. The wait matches events received since the run reached it (since
   * its previous step completed, or since it was created), so one sent while
   * the wait is being registered is not missed; with `lookback`, also those
   * received shortly before. An event resumes each waiting run at most once.
   */
  waitForEvent<TData = unknown>(id: string, options: WaitForEventOptions): Promise<ReceivedEvent<TData> | null>

  /**
   * Sends an event once per run: a retried run gets the stored step back and
   * does not send again (the default event id is derived from the run and the
   * step, so even a send whose acknowledgement was lost is not repeated).
   */
  sendEvent(id: string, event: EventToSend): Promise<{ id: string }>

  /**
   * Starts a child run of `options.job` and returns its result once it
   * completes. The child starts once per run and step id, whatever happens
   * to the parent's worker. The parent is suspended meanwhile (no lease, no
   * slot) and resumes on any worker. Invokes made before the handler next
   * yields go out together (`Promise.all(items.map((x, i) => step.invoke(...)))`):
   * every child starts at once and the parent resumes once, when the last
   * finishes or a timeout passes. Throws ChildRunFailedError when the child
   * failed or was cancelled, ChildRunTimeoutError when `timeout` passed;
   * both again on replay. Cancelling the parent cancels its unfinished
   * children.
   */
  invoke<TResult = unknown, TPayload = unknown>(id: string, options: InvokeOptions<TPayload>): Promise<TResult>
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
  /** For a run a schedule fired: the tick it was fired for (the instant the cron expression named). Undefined otherwise. */
  scheduledAt: Date | undefined
  /** For a run a schedule fired: the schedule's id. Undefined otherwise. */
  scheduleId: string | undefined
}

/** What a handler receives. */
export interface JobContext<TPayload> {
  /** The payload given at enqueue (JSON round-tripped). */
  payload: TPayload
  /** Durable, memoized steps. */
  step: StepTools
  /**
   * The State Store. Each value operation (get, set, delete, increment,
   * setIfAbsent, compareAndSet) applies once per run: it is recorded like a
   * step ("state.increment:<key>", with the ":n" rule for repeats), and a
   * retried or resumed run gets the recorded result back without applying it
   * again. `list` and locks are not recorded.
   */
  state: StateStore
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
  /** Flow-control policies, declared to the server in the worker's hello. */
  readonly policies: JobPolicies | undefined
}
