import type { Knex } from 'knex'
import { limits } from '../core/limits.js'
import type { ClaimedRun, LeaseRef } from '../core/run.js'
import { taskBytes, taskFits } from '../core/task-size.js'
import { type ClaimedBatch as LeasedBatch, runClaim, runFlowClaim } from '../db/queries/claim.js'
import { type Logger, runLogFields } from '../logger.js'
import type { ServerMetrics } from '../observability/metrics.js'
import type { FlowPolicies } from './flow-policies.js'
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

/** What a claim leased, in claim order. */
export interface ClaimedBatch extends LeasedBatch {
  /** When a rate limit that held ready runs back next has room: claim again then. */
  opensAt: Date | undefined
}

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
      policies: FlowPolicies
      /** Largest task the server can send: the message limit, less the response around the task. */
      maxTaskBytes: number
      /** Hands leased runs back to the queue and tells every server (LeaseWrites.releaseUndelivered). */
      release: (leases: readonly LeaseRef[]) => Promise<void>
      /** Ends leased runs' attempts (LeaseWrites.failRun). */
      fail: (failure: RunFailure) => Promise<unknown>
    },
  ) {}

  private rotation = 0

  /**
   * Leases up to `request.limit` ready runs, and at most `limits.claimBytesMax`
   * of them, in claim order. Runs of jobs and queues without flow control are
   * claimed by one statement (claim_runs), as ever; each queue and job under
   * flow control (FlowPolicies.isFlowControlled) by one flow claim
   * (claim_flow_runs) of its own, with what room is left. Which goes first
   * rotates from claim to claim, so neither starves the other.
   */
  async claim(request: ClaimRequest): Promise<ClaimedBatch> {
    const { policies } = this.deps
    const flowPairs: Array<{ queue: string; job: string }> = []
    const plainQueues: string[] = []
    for (const queue of request.queues) {
      if (policies.queueLimit(request.namespace, queue) !== undefined) {
        for (const job of request.jobs) flowPairs.push({ queue, job })
      } else {
        plainQueues.push(queue)
        for (const job of request.jobs) if (policies.isFlowControlled(request.namespace, queue, job)) flowPairs.push({ queue, job })
      }
    }
    if (flowPairs.length === 0)
      return { ...(await runClaim(this.deps.db, { ...request, maxBytes: limits.claimBytesMax })), opensAt: undefined }

    const flowJobs = new Set(flowPairs.map((pair) => pair.job))
    const plainJobs = request.jobs.filter(
      (job) => !flowJobs.has(job) || plainQueues.some((q) => !policies.isFlowControlled(request.namespace, q, job)),
    )
    const claims: Array<(limit: number, maxBytes: number) => Promise<LeasedBatch & { opensAt?: Date | undefined }>> = []
    if (plainQueues.length > 0 && plainJobs.length > 0) {
      claims.push((limit, maxBytes) => runClaim(this.deps.db, { ...request, queues: plainQueues, jobs: plainJobs, limit, maxBytes }))
    }
    for (const pair of flowPairs) {
      claims.push((limit, maxBytes) => runFlowClaim(this.deps.db, { ...request, ...pair, limit, maxBytes }))
    }
    const start = this.rotation++ % claims.length
    const outcome: ClaimedBatch = { runs: [], isCutByBytes: false, opensAt: undefined }
    let bytesLeft = limits.claimBytesMax
    for (let i = 0; i < claims.length; i++) {
      const room = request.limit - outcome.runs.length
      if (room <= 0 || bytesLeft <= 0) {
        outcome.isCutByBytes = true
        break
      }
      const batch = await claims[(start + i) % claims.length]!(room, bytesLeft)
      outcome.runs.push(...batch.runs)
      outcome.isCutByBytes ||= batch.isCutByBytes
      if (batch.opensAt && (!outcome.opensAt || batch.opensAt < outcome.opensAt)) outcome.opensAt = batch.opensAt
      bytesLeft -= batch.runs.reduce((sum, run) => sum + taskBytes(run), 0)
    }
    return outcome
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
