import type { Knex } from 'knex'
import { limits } from '../core/limits.js'
import type { ClaimedRun, LeaseRef } from '../core/run.js'
import { taskBytes, taskFits } from '../core/task-size.js'
import { type ClaimedBatch, runClaim } from '../db/queries/claim.js'
import { type Logger, runLogFields } from '../logger.js'
import type { ServerMetrics } from '../observability/metrics.js'
import type { RunFailure } from './lease-writes.js'

/** What a claim asks for: whose runs, how many, and the lease they get. */
export interface ClaimRequest {
  namespace: string
  queues: readonly string[]
  jobs: readonly string[]
  /** Most runs to lease. */
  limit: number
  leaseMs: number
  workerId: string
}

export type { ClaimedBatch }

/**
 * Leasing ready runs to a worker and handing them over. A claim is one
 * statement (db/queries/claim.ts), sized by count and by bytes
 * (`limits.claimBytesMax`, at least one run). Runs that cannot be handed over
 * once they are leased (the worker went away meanwhile) are released at once,
 * their attempt uncounted, rather than left leased until the lease expires.
 *
 * A run whose task cannot fit in one message (`maxTaskBytes`: its payload and
 * memo together are larger than the server may send) can never reach a
 * worker, and another attempt would not shrink it: it is not handed over but
 * failed, not retried, with an error that says so. Otherwise it would be
 * leased again and again, each time breaking the stream it was sent on.
 */
export class RunClaims {
  constructor(
    private readonly deps: {
      db: Knex
      metrics: ServerMetrics
      logger: Logger
      /** Largest task the server can send: the message limit, less the response around the task. */
      maxTaskBytes: number
      /** Hands leased runs back to the queue and tells every server (LeaseWrites.releaseUndelivered). */
      release: (leases: readonly LeaseRef[]) => Promise<void>
      /** Ends leased runs' attempts (LeaseWrites.failRun). */
      fail: (failure: RunFailure) => Promise<unknown>
    },
  ) {}

  /** Leases up to `request.limit` ready runs, and at most `limits.claimBytesMax` of them, in claim order. */
  claim(request: ClaimRequest): Promise<ClaimedBatch> {
    return runClaim(this.deps.db, { ...request, maxBytes: limits.claimBytesMax })
  }

  /**
   * Offers leased runs to `take`, which returns whether it took them. Taken
   * runs count as started; refused ones are released; runs too large to send
   * are failed first and not offered. Resolves to whether the runs offered
   * were taken (true when none were left to offer).
   */
  async handOver(runs: ClaimedRun[], take: (runs: ClaimedRun[]) => boolean, leaseMs: number): Promise<boolean> {
    const deliverable = this.withoutUndeliverable(runs)
    if (deliverable.length === 0) return true
    if (take(deliverable)) {
      this.deps.metrics.recordStarted(deliverable, leaseMs)
      return true
    }
    await this.deps
      .release(deliverable.map((run) => ({ runId: run.id, leaseToken: run.leaseToken })))
      .catch((error: unknown) =>
        this.deps.logger.warn(
          { err: error, runs: deliverable.map(runLogFields) },
          'could not release runs that were not delivered; their leases will expire',
        ),
      )
    return false
  }

  /** The runs that fit in a message; the others are failed. */
  private withoutUndeliverable(runs: ClaimedRun[]): ClaimedRun[] {
    const { maxTaskBytes } = this.deps
    if (runs.every((run) => taskFits(run, maxTaskBytes))) return runs
    return runs.filter((run) => {
      if (taskFits(run, maxTaskBytes)) return true
      const bytes = taskBytes(run)
      this.deps.logger.warn({ ...runLogFields(run), bytes, maxTaskBytes }, 'run too large to deliver; failing it')
      const failure: RunFailure = {
        runId: run.id,
        leaseToken: run.leaseToken,
        error: {
          name: 'TaskTooLargeError',
          message:
            `the run cannot be delivered to a worker: its payload and step results come to ${bytes} bytes as a task, ` +
            `more than the ${maxTaskBytes} that fit in one message (STACKSHIFT_MAX_MESSAGE_BYTES)`,
        },
        isRetriable: false,
        retryDelayMs: undefined,
        failedStep: undefined,
      }
      this.deps
        .fail(failure)
        .catch((error: unknown) =>
          this.deps.logger.warn({ err: error, ...runLogFields(run) }, 'could not fail a run too large to deliver; its lease will expire'),
        )
      return false
    })
  }
}
