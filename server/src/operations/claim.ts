import type { Knex } from 'knex'
import type { ClaimedRun, LeaseRef } from '../core/run.js'
import { runClaim } from '../db/queries/claim.js'
import { type Logger, runLogFields } from '../logger.js'
import type { ServerMetrics } from '../observability/metrics.js'

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

/**
 * Leasing ready runs to a worker and handing them over. A claim is one
 * statement (db/queries/claim.ts). Runs that cannot be handed over once they
 * are leased (the worker went away meanwhile) are released at once, their
 * attempt uncounted, rather than left leased until the lease expires.
 */
export class RunClaims {
  constructor(
    private readonly deps: {
      db: Knex
      metrics: ServerMetrics
      logger: Logger
      /** Hands leased runs back to the queue and tells every server (LeaseWrites.releaseUndelivered). */
      release: (leases: readonly LeaseRef[]) => Promise<void>
    },
  ) {}

  /** Leases up to `request.limit` ready runs, in claim order. */
  claim(request: ClaimRequest): Promise<ClaimedRun[]> {
    return runClaim(this.deps.db, request)
  }

  /**
   * Offers leased runs to `take`, which returns whether it took them. Taken
   * runs count as started; refused ones are released. Resolves to whether
   * they were taken.
   */
  async handOver(runs: ClaimedRun[], take: (runs: ClaimedRun[]) => boolean, leaseMs: number): Promise<boolean> {
    if (runs.length === 0) return true
    if (take(runs)) {
      this.deps.metrics.recordStarted(runs, leaseMs)
      return true
    }
    await this.deps
      .release(runs.map((run) => ({ runId: run.id, leaseToken: run.leaseToken })))
      .catch((error: unknown) =>
        this.deps.logger.warn(
          { err: error, runs: runs.map(runLogFields) },
          'could not release runs that were not delivered; their leases will expire',
        ),
      )
    return false
  }
}
