import type { NewRun } from '@stackshift/proto/run-service'
import { type Duration, parseDurationMs } from './duration.js'
import type { QueueInfo, QueuePolicies } from './flow.js'
import { encodeJson } from './json.js'
import { attributes, currentTraceContext, inSpan, SpanKind } from './tracing.js'
import type { EnqueuedRun } from './types.js'

/** Options of `enqueue`. */
export interface EnqueueOptions {
  /**
   * While this key is live in the namespace (24 h by default), enqueueing
   * with it again returns the same run with `deduplicated: true`. A run that
   * ends failed or cancelled releases its key.
   */
  idempotencyKey?: string
  /** How long the idempotency key deduplicates. Default: the server's (24 h). */
  idempotencyTtl?: Duration
  /** Wait this long before the run becomes ready ("10m", or milliseconds). */
  delay?: Duration
  /** Become ready at this instant. */
  runAt?: Date
  /** Higher runs first among ready runs of the queue (-1000 to 1000, default 0). */
  priority?: number
  /** Attempts before the run ends failed. Default: the server's (5). */
  maxAttempts?: number
  /**
   * The key value for the job's flow-control policies (concurrency, rate
   * limit, fairness), instead of the value at their payload path.
   */
  concurrencyKey?: string
}

/** One entry of `enqueueMany`. */
export interface EnqueueItem<TPayload = unknown> extends EnqueueOptions {
  job: string
  payload: TPayload
}

/** @internal how a Queue reaches the server */
export interface EnqueueTransport {
  configure(policies: QueuePolicies): Promise<QueueInfo>
  getPolicies(): Promise<QueueInfo>
  enqueue(run: NewRun, options: EnqueueOptions): Promise<EnqueuedRun>
  enqueueBatch(runs: NewRun[]): Promise<EnqueuedRun[]>
}

/** A named queue to enqueue runs on. */
export class Queue {
  /** @internal created by `StackShift.queue()` */
  constructor(
    readonly name: string,
    private readonly transport: EnqueueTransport,
  ) {}

  /**
   * Sets the queue's flow-control policies on the server:
   * `{ concurrency: 10 }` lets at most 10 runs of the queue run at once,
   * across every job, worker and server (0: no limit). Takes effect at once,
   * without a restart. Needs a key with the `operate` scope.
   */
  configure(policies: QueuePolicies): Promise<QueueInfo> {
    return this.transport.configure(policies)
  }

  /** The queue's stored policies (version 0 when never configured). */
  getPolicies(): Promise<QueueInfo> {
    return this.transport.getPolicies()
  }

  /** Enqueues one run of `job` with `payload` (JSON). */
  async enqueue<TPayload = unknown>(job: string, payload: TPayload, options: EnqueueOptions = {}): Promise<EnqueuedRun> {
    const spanAttributes = { [attributes.queue]: this.name, [attributes.job]: job }
    return inSpan(`enqueue ${job}`, { kind: SpanKind.PRODUCER, attributes: spanAttributes }, async (span) => {
      const run = await this.transport.enqueue(this.toNewRun(job, payload, options, currentTraceContext()), options)
      span.setAttribute(attributes.runId, run.id)
      return run
    })
  }

  /** Enqueues many runs in one call and one transaction: all or none. Results in input order. */
  async enqueueMany<TPayload = unknown>(items: ReadonlyArray<EnqueueItem<TPayload>>): Promise<EnqueuedRun[]> {
    const spanAttributes = { [attributes.queue]: this.name, [attributes.runCount]: items.length }
    return inSpan(`enqueue ${this.name}`, { kind: SpanKind.PRODUCER, attributes: spanAttributes }, () => {
      const traceContext = currentTraceContext()
      return this.transport.enqueueBatch(items.map((item) => this.toNewRun(item.job, item.payload, item, traceContext)))
    })
  }

  private toNewRun(job: string, payload: unknown, options: EnqueueOptions, traceContext: Record<string, string>): NewRun {
    return {
      queue: this.name,
      job,
      payloadJson: encodeJson(payload, 'payload') ?? '',
      idempotencyKey: options.idempotencyKey ?? '',
      idempotencyTtlMs: options.idempotencyTtl === undefined ? 0 : parseDurationMs(options.idempotencyTtl, 'idempotencyTtl'),
      delayMs: options.delay === undefined ? 0 : parseDurationMs(options.delay, 'delay'),
      runAt: options.runAt,
      priority: options.priority ?? 0,
      maxAttempts: options.maxAttempts ?? 0,
      traceContext,
      concurrencyKey: options.concurrencyKey,
    }
  }
}
