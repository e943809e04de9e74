import { protocolLimits } from '@stackshift/proto/limits'
import type { Event } from '@stackshift/proto/run'
import type { ChildRunRequest, SuspendRunRequest } from '@stackshift/proto/worker-service'
import { fromEventJson, fromEventMessage } from './convert.js'
import { type Duration, parseDurationMs } from './duration.js'
import { ChildRunFailedError, type ChildRunFailureStatus, ChildRunTimeoutError, InvalidArgumentError } from './errors.js'
import type { EventToSend, InvokeOptions, StepTools, WaitForEventOptions } from './job.js'
import { decodeJson, encodeJson } from './json.js'
import { attributes, inSpan, type Span } from './tracing.js'
import type { ReceivedEvent } from './types.js'

/** What a sleep or wait asks of the server. */
export type Wait = NonNullable<SuspendRunRequest['wait']>

/** How a step reaches the server. */
export interface StepSink {
  /** Stores the result; resolves once the server acknowledged it. */
  completeStep(stepId: string, resultJson: string | undefined, durationMs: number, kind: 'run' | 'send'): Promise<void>
  /**
   * Records a sleep or wait. Resolves with the wait's outcome when the step
   * completed at once; when the run was suspended instead, aborts the
   * execution and rejects with the abort reason.
   */
  suspend(stepId: string, wait: Wait): Promise<{ event: Event | undefined }>
  /** Sends an event; resolves with its id once stored. */
  sendEvent(event: { id: string; name: string; dataJson: string }): Promise<string>
}

/** The step that threw, if the attempt fails because of it. */
export interface FailedStep {
  stepId: string
  error: unknown
  durationMs: number
}

/**
 * Steps of one execution: step ids (with the ":n" repeat rule), the memo of
 * steps completed in earlier attempts, and the step that failed.
 */
export class StepRunner implements StepTools {
  private readonly repeats = new Map<string, number>()
  private readonly usedIds = new Set<string>()
  /** The last step that threw, reported with the attempt's failure when the handler rethrows its error. */
  failedStep: FailedStep | undefined
  /** Child runs of invokes made since the handler last yielded, and the suspension that will start them all. */
  private invokeBatch: { children: ChildRunRequest[]; sent: Promise<never> } | undefined

  constructor(
    private readonly runId: string,
    private readonly attempt: number,
    private readonly memo: ReadonlyMap<string, string | undefined>,
    private readonly sink: StepSink,
    /** Why the attempt was stopped, once it was. */
    private readonly abortReason: () => Error | undefined,
  ) {
    // Handlers destructure: `const { run, sleep } = step`.
    this.run = this.run.bind(this)
    this.sleep = this.sleep.bind(this)
    this.sleepUntil = this.sleepUntil.bind(this)
    this.waitForEvent = this.waitForEvent.bind(this)
    this.sendEvent = this.sendEvent.bind(this)
    this.invoke = this.invoke.bind(this)
  }

  async run<T>(id: string, fn: () => T | Promise<T>): Promise<Awaited<T>> {
    const stepId = this.allocateId(id)
    return this.traced<Awaited<T>>('run', stepId, async (span): Promise<Awaited<T>> => {
      if (this.memo.has(stepId)) return this.memoized(span, decodeJson(this.memo.get(stepId)) as Awaited<T>)
      this.throwIfAborted()
      const startedAt = performance.now()
      let value: Awaited<T>
      try {
        value = await fn()
      } catch (error) {
        this.failedStep = { stepId, error, durationMs: Math.round(performance.now() - startedAt) }
        throw error
      }
      const resultJson = encodeJson(value, `the result of step "${stepId}"`)
      this.throwIfAborted()
      await this.sink.completeStep(stepId, resultJson, Math.round(performance.now() - startedAt), 'run')
      return decodeJson(resultJson) as Awaited<T>
    })
  }

  async sleep(id: string, duration: Duration): Promise<void> {
    const stepId = this.allocateId(id)
    const ms = parseDurationMs(duration, `step.sleep("${stepId}") duration`)
    // The wake time is fixed by this worker's clock when the step is first reached.
    return this.suspendForSleep(stepId, () => new Date(Date.now() + ms))
  }

  async sleepUntil(id: string, until: Date | string | number): Promise<void> {
    const stepId = this.allocateId(id)
    const wakeAt = new Date(until)
    if (Number.isNaN(wakeAt.getTime())) {
      throw new InvalidArgumentError(`step.sleepUntil("${stepId}") needs a valid date, got ${String(until)}`)
    }
    return this.suspendForSleep(stepId, () => wakeAt)
  }

  private suspendForSleep(stepId: string, wakeAt: () => Date): Promise<void> {
    return this.traced('sleep', stepId, async (span) => {
      if (this.memo.has(stepId)) {
        this.memoized(span, undefined)
        return
      }
      this.throwIfAborted()
      await this.sink.suspend(stepId, { $case: 'sleep', sleep: { wakeAt: wakeAt() } })
    })
  }

  async waitForEvent<TData = unknown>(id: string, options: WaitForEventOptions): Promise<ReceivedEvent<TData> | null> {
    const stepId = this.allocateId(id)
    const what = `step.waitForEvent("${stepId}")`
    // Checked as JavaScript callers may call it: options missing, or of other types.
    const given = options as Partial<Record<keyof WaitForEventOptions, unknown>> | undefined
    if (typeof given?.event !== 'string' || given.event === '') {
      throw new InvalidArgumentError(`${what} needs options.event, the name of the event`)
    }
    const { match } = options
    if (given.match !== undefined && (given.match === null || typeof given.match !== 'object' || Array.isArray(given.match))) {
      throw new InvalidArgumentError(
        `${what} options.match must be an object of fields to match, got ${Array.isArray(given.match) ? 'an array' : typeof given.match}`,
      )
    }
    if (given.timeout === undefined) throw new InvalidArgumentError(`${what} needs options.timeout, such as "1h"`)
    const timeoutMs = parseDurationMs(options.timeout, `${what} options.timeout`)
    if (timeoutMs < 1) throw new InvalidArgumentError(`${what} options.timeout must be at least 1 ms`)
    const lookbackMs = options.lookback === undefined ? 0 : parseDurationMs(options.lookback, `${what} options.lookback`)
    const matchJson = encodeJson(match ?? {}, `${what} options.match`) ?? '{}'
    return this.traced('wait', stepId, async (span) => {
      if (this.memo.has(stepId)) return this.memoized(span, fromEventJson<TData>(this.memo.get(stepId)))
      this.throwIfAborted()
      const { event } = await this.sink.suspend(stepId, {
        $case: 'event',
        event: { name: options.event, matchJson, timeoutMs, lookbackMs },
      })
      return event ? fromEventMessage<TData>(event) : null
    })
  }

  async sendEvent(id: string, event: EventToSend): Promise<{ id: string }> {
    const stepId = this.allocateId(id)
    const what = `step.sendEvent("${stepId}")`
    if (typeof (event as EventToSend | undefined)?.name !== 'string' || event.name === '')
      throw new InvalidArgumentError(`${what} needs event.name`)
    const dataJson = encodeJson(event.data ?? null, `${what} event.data`) ?? 'null'
    return this.traced('send', stepId, async (span) => {
      if (this.memo.has(stepId)) return this.memoized(span, decodeJson(this.memo.get(stepId)) as { id: string })
      this.throwIfAborted()
      const startedAt = performance.now()
      const eventId = await this.sink.sendEvent({ id: event.id ?? `${this.runId}:${stepId}`, name: event.name, dataJson })
      const resultJson = JSON.stringify({ id: eventId })
      this.throwIfAborted()
      await this.sink.completeStep(stepId, resultJson, Math.round(performance.now() - startedAt), 'send')
      return { id: eventId }
    })
  }

  async invoke<TResult = unknown, TPayload = unknown>(id: string, options: InvokeOptions<TPayload>): Promise<TResult> {
    const stepId = this.allocateId(id)
    const what = `step.invoke("${stepId}")`
    // Checked as JavaScript callers may call it: options missing, or of other types.
    const given = options as Partial<Record<keyof InvokeOptions, unknown>> | undefined
    if (typeof given?.job !== 'string' || given.job === '') throw new InvalidArgumentError(`${what} needs options.job, the child's job`)
    if (given.queue !== undefined && (typeof given.queue !== 'string' || given.queue === '')) {
      throw new InvalidArgumentError(`${what} options.queue must be a non-empty string`)
    }
    if (given.timeout === undefined) throw new InvalidArgumentError(`${what} needs options.timeout, such as "10m"`)
    const timeoutMs = parseDurationMs(options.timeout, `${what} options.timeout`)
    if (timeoutMs < 1) throw new InvalidArgumentError(`${what} options.timeout must be at least 1 ms`)
    const child: ChildRunRequest = {
      stepId,
      queue: options.queue ?? '',
      job: options.job,
      payloadJson: encodeJson(options.payload ?? null, `${what} options.payload`) ?? 'null',
      timeoutMs,
      maxAttempts: options.maxAttempts ?? 0,
      priority: options.priority ?? 0,
    }
    return this.traced('invoke', stepId, async (span) => {
      if (this.memo.has(stepId)) return this.memoized(span, childOutcome<TResult>(stepId, this.memo.get(stepId)))
      this.throwIfAborted()
      return this.startWithOthers(child)
    })
  }

  /**
   * Sends the invokes made before the handler next yields (setImmediate runs
   * after every pending promise callback) in one suspension, so a fan-out
   * starts its children together and the run suspends, and later resumes,
   * once. The suspension always ends the attempt: the promise rejects with
   * why (RunSuspendedError, or a lost lease).
   */
  private startWithOthers(child: ChildRunRequest): Promise<never> {
    if (!this.invokeBatch) {
      const children: ChildRunRequest[] = []
      const sent = new Promise<void>((resolve) => setImmediate(resolve)).then(async (): Promise<never> => {
        this.invokeBatch = undefined
        await this.sink.suspend(children[0]!.stepId, { $case: 'invoke', invoke: { children } })
        throw new Error(`the server did not suspend the run on step.invoke("${children[0]!.stepId}"); it must always do so`)
      })
      this.invokeBatch = { children, sent }
    }
    if (this.invokeBatch.children.length >= protocolLimits.invokeChildrenMax) {
      throw new InvalidArgumentError(
        `step.invoke("${child.stepId}"): at most ${protocolLimits.invokeChildrenMax} child runs start together; await them in rounds`,
      )
    }
    this.invokeBatch.children.push(child)
    return this.invokeBatch.sent
  }

  /** A span for one step of this attempt, named by its kind and id. */
  private traced<T>(kind: 'run' | 'sleep' | 'wait' | 'send' | 'invoke', stepId: string, fn: (span: Span) => Promise<T>): Promise<T> {
    const spanAttributes = { [attributes.stepId]: stepId, [attributes.stepKind]: kind, [attributes.attempt]: this.attempt }
    return inSpan(`${kind === 'run' ? 'step' : kind} ${stepId}`, { attributes: spanAttributes }, fn)
  }

  /** A step replayed from the memo: its span says so. */
  private memoized<T>(span: Span, value: T): T {
    span.setAttribute(attributes.outcome, 'memoized')
    return value
  }

  /** For State Store operations made inside the run: the operation's id (step-id rules) and its record, if it has one. */
  stateOperation(name: string): { opId: string; record: { json: string | undefined } | undefined } {
    const opId = this.allocateId(name)
    return { opId, record: this.memo.has(opId) ? { json: this.memo.get(opId) } : undefined }
  }

  /**
   * The id under which this call is stored. Deterministic as long as the
   * handler calls steps in the same order, which is what lets a retry find
   * its memo. An explicit id that collides with a generated one is an error.
   */
  private allocateId(id: string): string {
    if (typeof id !== 'string' || id.length === 0) throw new TypeError('step id must be a non-empty string')
    const seen = this.repeats.get(id) ?? 0
    this.repeats.set(id, seen + 1)
    const stepId = seen === 0 ? id : `${id}:${seen}`
    if (this.usedIds.has(stepId)) {
      throw new TypeError(
        `step id "${stepId}" is used twice in this run: "${id}" repeated ${seen} times collides with an explicit "${stepId}"; rename one`,
      )
    }
    this.usedIds.add(stepId)
    return stepId
  }

  throwIfAborted(): void {
    const reason = this.abortReason()
    if (reason) throw reason
  }
}

/** An invoke step's memoized outcome (see STEP_KIND_INVOKE): the child's result, or its failure thrown. */
function childOutcome<TResult>(stepId: string, json: string | undefined): TResult {
  const outcome = decodeJson(json) as {
    childRunId: string
    status: 'completed' | ChildRunFailureStatus
    result?: TResult
    error?: { name: string; message: string }
  }
  if (outcome.status === 'completed') return outcome.result as TResult
  const failure = {
    stepId,
    childRunId: outcome.childRunId,
    status: outcome.status,
    error: outcome.error ?? { name: 'Error', message: outcome.status },
  }
  throw outcome.status === 'timed_out' ? new ChildRunTimeoutError(failure) : new ChildRunFailedError(failure)
}
