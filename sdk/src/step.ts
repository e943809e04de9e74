import type { StepTools } from './job.js'
import { decodeJson, encodeJson } from './json.js'

/** How a step reaches the server. */
export interface StepSink {
  /** Stores the result; resolves once the server acknowledged it. */
  completeStep(stepId: string, resultJson: string | undefined, durationMs: number): Promise<void>
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

  constructor(
    private readonly memo: ReadonlyMap<string, string | undefined>,
    private readonly sink: StepSink,
    /** Why the attempt was stopped, once it was. */
    private readonly abortReason: () => Error | undefined,
  ) {
    this.run = this.run.bind(this)
  }

  async run<T>(id: string, fn: () => T | Promise<T>): Promise<Awaited<T>> {
    const stepId = this.allocateId(id)
    if (this.memo.has(stepId)) return decodeJson(this.memo.get(stepId)) as Awaited<T>
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
    await this.sink.completeStep(stepId, resultJson, Math.round(performance.now() - startedAt))
    return decodeJson(resultJson) as Awaited<T>
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

  private throwIfAborted(): void {
    const reason = this.abortReason()
    if (reason) throw reason
  }
}
