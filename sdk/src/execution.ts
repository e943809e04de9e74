import { inspect } from 'node:util'
import { status } from '@grpc/grpc-js'
import { StepKind } from '@stackshift/proto/run'
import type { OperationResult, Task } from '@stackshift/proto/worker-service'
import { ChildRunFailedError, LeaseLostError, RunSuspendedError, errorFromStatus, statusOf } from './errors.js'
import { NonRetriableError, RetryAfterError } from './handler-errors.js'
import type { JobContext, JobDefinition, RunInfo } from './job.js'
import { decodeJson, encodeJson, jsonText } from './json.js'
import type { Logger } from './logger.js'
import { type FailedStep, StepRunner } from './step.js'
import type { RunStateScope, StateStore } from './state.js'
import { attributes, contextFrom, inSpan, recordOutcome, type Span, SpanKind, traceIdOf } from './tracing.js'
import type { OperationBody } from './worker-connection.js'

/** How an execution talks to the server. */
export interface ExecutionDeps {
  /** Sends a write about the run on the worker's stream. */
  send: (body: OperationBody) => Promise<OperationResult>
  /**
   * Sends an event (RunService.SendEvent); resolves with its id. Its id makes
   * it safe to send again, so it is retried until stored or `throwIfAborted`
   * throws (the attempt was stopped).
   */
  sendEvent: (event: { id: string; name: string; dataJson: string }, throwIfAborted: () => void) => Promise<string>
  /** The State Store, with value operations recorded in the run. */
  runState: (scope: RunStateScope) => StateStore
  logger: Logger
  /** The handler returned or threw: its slot is free, while the outcome may still be being reported. Called once. */
  onHandlerSettled: (execution: Execution) => void
  /** The attempt is over: the handler settled and its outcome was reported (or could not be). Called once. */
  onDone: (execution: Execution, unexpected: unknown) => void
}

/**
 * One attempt of one run on this worker: runs the handler with its context,
 * then reports the outcome (complete or fail) under the task's lease. If the
 * lease is lost, the run cancelled, or the worker hands the run back, `signal`
 * aborts and nothing more is reported: the server would reject it anyway.
 */
export class Execution {
  // Created on first use of `signal`: most handlers never look at it, and an
  // AbortController per run is a measurable cost at thousands of runs a second.
  private controller: AbortController | undefined
  private abortReason: Error | undefined
  private isHandlerSettled = false
  private finished: Promise<void> | undefined
  /** When the handler started (performance.now()). */
  startedAt = 0

  constructor(
    readonly task: Task,
    private readonly definition: JobDefinition,
    readonly deps: ExecutionDeps,
  ) {}

  /**
   * Runs the attempt. A handler that throws at once settles before this
   * returns, so the caller counts the execution before starting it.
   */
  start(): void {
    this.startedAt = performance.now()
    this.finished = this.runToEnd()
  }

  /** Settles when the handler has returned or thrown and the outcome was reported; never rejects. */
  get done(): Promise<void> {
    return this.finished ?? notStarted
  }

  /** What every log line about this run carries. */
  get logFields(): Record<string, unknown> {
    return runLogFields(this.task)
  }

  get runId(): string {
    return this.task.runId
  }

  get leaseToken(): string {
    return this.task.leaseToken
  }

  get isAborted(): boolean {
    return this.abortReason !== undefined
  }

  /** The handler's signal. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController()
      if (this.abortReason) this.controller.abort(this.abortReason)
    }
    return this.controller.signal
  }

  /** Stops the attempt: the handler's signal fires with `reason`. */
  abort(reason: Error): void {
    if (this.abortReason) return
    this.abortReason = reason
    this.controller?.abort(reason)
  }

  private async runToEnd(): Promise<void> {
    let unexpected: unknown
    try {
      await this.execute()
    } catch (error) {
      unexpected = error
    }
    this.settleHandler()
    this.deps.onDone(this, unexpected)
  }

  private settleHandler(): void {
    if (this.isHandlerSettled) return
    this.isHandlerSettled = true
    this.deps.onHandlerSettled(this)
  }

  /** The attempt as a span that continues the enqueuer's trace; its steps are child spans. */
  private execute(): Promise<void> {
    const { task } = this
    const spanAttributes = {
      [attributes.runId]: task.runId,
      [attributes.queue]: task.queue,
      [attributes.job]: task.job,
      [attributes.attempt]: task.attempt,
    }
    const parent = contextFrom(task.traceContext)
    return inSpan(`run ${task.job}`, { kind: SpanKind.CONSUMER, attributes: spanAttributes, parent }, (span) => this.runAttempt(span))
  }

  private async runAttempt(span: Span): Promise<void> {
    const { task } = this
    const context = new AttemptContext(this, decodeJson(task.payloadJson))
    let result: unknown
    try {
      result = await this.definition.handler(context)
    } catch (error) {
      this.settleHandler()
      recordOutcome(span, this.abortReason ?? error)
      const failedStep = context.usedSteps?.failedStep
      await this.fail(error, failedStep?.error === error ? failedStep : undefined)
      return
    }
    this.settleHandler()
    // Suspended, cancelled, lost or handed back: this attempt reports nothing more.
    if (this.abortReason) {
      recordOutcome(span, this.abortReason)
      return
    }
    let resultJson: string | undefined
    try {
      resultJson = encodeJson(result, `the result of job "${task.job}"`)
    } catch (error) {
      const refused = new NonRetriableError((error as Error).message)
      recordOutcome(span, refused)
      await this.fail(refused, undefined)
      return
    }
    const answer = await this.deps.send({
      $case: 'completeRun',
      completeRun: { runId: task.runId, leaseToken: task.leaseToken, resultJson },
    })
    const code = statusOf(answer.code)
    if (code === status.OK) return
    if (code === status.FAILED_PRECONDITION) {
      this.deps.logger.info('run finished after its lease was lost; the result was not stored', this.logFields)
    } else if (code === status.RESOURCE_EXHAUSTED || code === status.INVALID_ARGUMENT) {
      await this.fail(new NonRetriableError(`the server refused the run's result: ${answer.message}`), undefined)
    } else {
      this.deps.logger.warn('could not report the run as completed; its lease will expire and it will run again', {
        ...this.logFields,
        code: answer.code,
        message: answer.message,
      })
    }
  }

  /** The attempt's steps, replaying those completed in earlier attempts. */
  createSteps(): StepRunner {
    const { task } = this
    const memo = task.steps.length === 0 ? noSteps : new Map(task.steps.map((step) => [step.stepId, step.resultJson]))
    return new StepRunner(
      task.runId,
      task.attempt,
      memo,
      {
        completeStep: async (stepId, resultJson, durationMs, kind) => {
          const result = await this.deps.send({
            $case: 'completeStep',
            completeStep: {
              runId: task.runId,
              leaseToken: task.leaseToken,
              stepId,
              resultJson,
              durationMs,
              kind: kind === 'send' ? StepKind.STEP_KIND_SEND : StepKind.STEP_KIND_RUN,
            },
          })
          this.throwUnlessOk(result)
        },
        suspend: async (stepId, wait) => {
          const result = await this.deps.send({
            $case: 'suspendRun',
            suspendRun: { runId: task.runId, leaseToken: task.leaseToken, stepId, wait },
          })
          this.throwUnlessOk(result)
          const outcome = result.result?.$case === 'suspendRun' ? result.result.suspendRun : undefined
          if (outcome?.suspended) {
            // The lease is over: the run continues on a later execution, from the memo.
            const reason = new RunSuspendedError(`run ${task.runId} is waiting on step "${stepId}"`)
            this.abort(reason)
            throw reason
          }
          return { event: outcome?.event }
        },
        sendEvent: (event) =>
          this.deps.sendEvent(event, () => {
            if (this.abortReason) throw this.abortReason
          }),
      },
      () => this.abortReason,
    )
  }

  private async fail(error: unknown, failedStep: FailedStep | undefined): Promise<void> {
    // A revoked lease (lost, cancelled, handed back at shutdown) rejects every
    // write of this attempt; whoever holds the run now reports on it.
    if (this.abortReason) return
    const info = describeError(error)
    const answer = await this.deps.send({
      $case: 'failRun',
      failRun: {
        runId: this.task.runId,
        leaseToken: this.task.leaseToken,
        error: info,
        nonRetriable: isNonRetriable(error),
        retryDelayMs: error instanceof RetryAfterError ? error.retryAfterMs : undefined,
        failedStepId: failedStep?.stepId ?? '',
        failedStepDurationMs: failedStep?.durationMs ?? 0,
      },
    })
    const code = statusOf(answer.code)
    if (code !== status.OK && code !== status.FAILED_PRECONDITION) {
      this.deps.logger.warn('could not report the run as failed; its lease will expire and it will run again', {
        ...this.logFields,
        code: answer.code,
        message: answer.message,
      })
    }
  }

  private throwUnlessOk(result: OperationResult): void {
    const code = statusOf(result.code)
    if (code === status.OK) return
    if (code === status.FAILED_PRECONDITION) {
      const error = new LeaseLostError(result.message)
      this.abort(error)
      throw error
    }
    throw errorFromStatus(result.code, result.message)
  }
}

const noSteps: ReadonlyMap<string, string | undefined> = new Map()
const notStarted = Promise.resolve()

/**
 * What a handler receives. One per attempt, so its parts most handlers never
 * touch (steps, the State Store, the signal, the logger) are built on first
 * use: at thousands of runs a second, per-run objects are what the worker
 * spends its time collecting.
 */
class AttemptContext implements JobContext<unknown> {
  private steps: StepRunner | undefined
  private stateStore: StateStore | undefined
  private runInfo: RunInfo | undefined

  constructor(
    private readonly execution: Execution,
    readonly payload: unknown,
  ) {}

  get step(): StepRunner {
    this.steps ??= this.execution.createSteps()
    return this.steps
  }

  get state(): StateStore {
    if (!this.stateStore) {
      const { task, deps } = this.execution
      const steps = this.step
      this.stateStore = deps.runState({
        runId: task.runId,
        leaseToken: task.leaseToken,
        attempt: task.attempt,
        operation: (name) => steps.stateOperation(name),
        throwIfAborted: () => steps.throwIfAborted(),
      })
    }
    return this.stateStore
  }

  get signal(): AbortSignal {
    return this.execution.signal
  }

  get run(): RunInfo {
    const { task } = this.execution
    this.runInfo ??= {
      id: task.runId,
      job: task.job,
      queue: task.queue,
      namespace: task.namespace,
      attempt: task.attempt,
      maxAttempts: task.maxAttempts,
      createdAt: task.createdAt,
      scheduledAt: task.scheduledAt,
      scheduleId: task.scheduleId || undefined,
    }
    return this.runInfo
  }

  get logger(): Logger {
    return withFields(this.execution.deps.logger, this.execution.logFields)
  }

  /** The steps, if the handler used any. */
  get usedSteps(): StepRunner | undefined {
    return this.steps
  }
}

/** Run id, job, attempt and trace id: the fields of every log line about a run. */
export function runLogFields(task: Task): Record<string, unknown> {
  return { runId: task.runId, job: task.job, attempt: task.attempt, traceId: traceIdOf(task.traceContext) }
}

/** Errors no retry can change: a child run's failure replays from the memo as the same error. */
function isNonRetriable(error: unknown): boolean {
  return (
    error instanceof NonRetriableError ||
    error instanceof ChildRunFailedError ||
    (error instanceof Error && error.name === 'NonRetriableError')
  )
}

function describeError(error: unknown): { name: string; message: string; stack: string } {
  if (error instanceof Error) return { name: error.name || 'Error', message: error.message || String(error), stack: error.stack ?? '' }
  return { name: 'Error', message: typeof error === 'string' ? error : (jsonText(error) ?? inspect(error)), stack: '' }
}

function withFields(logger: Logger, fields: Record<string, unknown>): Logger {
  return {
    debug: (message, more) => logger.debug(message, { ...fields, ...more }),
    info: (message, more) => logger.info(message, { ...fields, ...more }),
    warn: (message, more) => logger.warn(message, { ...fields, ...more }),
    error: (message, more) => logger.error(message, { ...fields, ...more }),
  }
}
