import type { Knex } from 'knex'
import { LeaseLostError, PermissionDeniedError } from '../core/errors.js'
import type { RetryBackoff } from '../core/retry-policy.js'
import { type ErrorInfo, type Fenced, type LeaseRef, type StepCompletion, leaseKey, publicStatus, stepKey } from '../core/run.js'
import type { Executor } from '../db/database.js'
import { isDataError, isUniqueViolation } from '../db/errors.js'
import { runLockHeldLeases } from '../db/queries/attempt-endings.js'
import { type LeaseOutcome, runComplete, runFindLeaseOutcomes, runHeartbeat, runRelease } from '../db/queries/lease-writes.js'
import { stepCompleteMany } from '../db/queries/step-memo.js'
import { failpoint } from '../failpoints.js'
import type { Logger } from '../logger.js'
import type { ServerMetrics } from '../observability/metrics.js'
import { type AttemptFailure, type FailureResult, endFailedAttempts } from './attempt-endings.js'
import { GroupCommit } from './group-commit.js'
import type { ReadyAnnouncer } from './ready-announcer.js'

/** A completion reported by a worker. */
export interface RunCompletion extends LeaseRef {
  /** JSON text; undefined when the handler returned nothing. */
  resultJson: string | undefined
}

/** A failure reported by a worker. */
export interface RunFailure extends LeaseRef {
  error: ErrorInfo
  isRetriable: boolean
  retryDelayMs: number | undefined
  failedStep: { stepId: string; durationMs: number } | undefined
}

/** A lease the worker must stop working on. */
export interface RevokedLease {
  runId: string
  reason: 'lease_lost' | 'cancelled'
}

/**
 * Everything a worker writes about its leased runs. Each kind of write goes
 * through its own group commit, so a thousand workers completing steps at once
 * cost a handful of statements, and each write is answered after its batch
 * committed. Every statement checks the lease and the writer's namespace (see
 * db/queries/lease-writes.ts); a write without a held lease rejects with
 * LeaseLostError, one about a run of a namespace the writer may not act in
 * with PermissionDeniedError, and either stores nothing.
 */
export class LeaseWrites {
  private readonly steps: GroupCommit<Fenced<StepCompletion>, undefined>
  private readonly completions: GroupCommit<Fenced<RunCompletion>, undefined>
  private readonly failures: GroupCommit<Fenced<RunFailure>, FailureResult>
  private readonly releases: GroupCommit<Fenced<LeaseRef>, undefined>
  private readonly heartbeats: GroupCommit<{ lease: Fenced<LeaseRef>; leaseMs: number }, boolean>

  constructor(
    private readonly deps: {
      db: Knex
      announcer: ReadyAnnouncer
      backoff: RetryBackoff
      metrics: ServerMetrics
      logger: Logger
      writeConcurrency: number
    },
  ) {
    const options = { maxBatchSize: 1000, maxInFlight: deps.writeConcurrency, isItemError: isDataError }
    this.steps = new GroupCommit((items) => this.writeSteps(items), { ...options, itemsName: 'step results' })
    this.completions = new GroupCommit((items) => this.writeCompletions(items), { ...options, itemsName: 'run completions' })
    this.failures = new GroupCommit((items) => this.writeFailures(items), { ...options, itemsName: 'run failures' })
    this.releases = new GroupCommit((items) => this.writeReleases(items), { ...options, itemsName: 'run releases' })
    this.heartbeats = new GroupCommit((items) => this.writeHeartbeats(items), {
      ...options,
      maxBatchSize: 10_000,
      itemsName: 'heartbeat leases',
    })
  }

  /** Memoizes a step result. */
  completeStep(step: Fenced<StepCompletion>): Promise<void> {
    return this.steps.submit(step)
  }

  /** Completes a run. Repeating a completion that already took effect succeeds. */
  completeRun(completion: Fenced<RunCompletion>): Promise<void> {
    return this.completions.submit(completion)
  }

  /** Fails an attempt; the run is retried or ends FAILED. */
  failRun(failure: Fenced<RunFailure>): Promise<FailureResult> {
    return this.failures.submit(failure)
  }

  /** Hands a run back without counting the attempt. */
  releaseRun(lease: Fenced<LeaseRef>): Promise<void> {
    return this.releases.submit(lease)
  }

  /**
   * Hands back runs claimed for a consumer that went away before they reached
   * it, telling workers on every server as releaseRun does. A run whose lease
   * is no longer held is left as it is.
   */
  async releaseUndelivered(leases: readonly LeaseRef[]): Promise<void> {
    await this.writeReleases(leases.map((lease) => ({ ...lease, namespace: '*' })))
  }

  /** Extends leases; returns those that are no longer held, and why. */
  async heartbeat(leases: ReadonlyArray<Fenced<LeaseRef>>, leaseMs: number): Promise<RevokedLease[]> {
    // All or none: a heartbeat refused for a full queue extends no lease.
    const held = await this.heartbeats.submitAll(leases.map((lease) => ({ lease, leaseMs })))
    const lost = leases.filter((_, index) => !held[index])
    if (lost.length === 0) return []
    const outcomes = await runFindLeaseOutcomes(this.deps.db, { runIds: lost.map((lease) => lease.runId) })
    return lost.map((lease) => {
      const current = outcomes.get(lease.runId)
      const isCancelled = current?.status === 'cancelled' && current.leaseToken === lease.leaseToken && isWritersRun(lease, current)
      return { runId: lease.runId, reason: isCancelled ? 'cancelled' : 'lease_lost' }
    })
  }

  /** Resolves once every accepted write has been committed. */
  async drain(): Promise<void> {
    await Promise.all([this.steps.drain(), this.completions.drain(), this.failures.drain(), this.releases.drain(), this.heartbeats.drain()])
  }

  private async writeSteps(items: Array<Fenced<StepCompletion>>): Promise<Array<undefined | Error>> {
    // A step sent twice under one lease in one batch (a retransmission) is
    // written once and answers both.
    const unique = [
      ...new Map(items.map((item) => [`${stepKey(item.runId, item.stepId)}/${item.leaseToken}/${item.namespace}`, item])).values(),
    ]
    let stored: Map<string, { namespace: string; job: string }>
    try {
      stored = await stepCompleteMany(this.deps.db, { steps: unique, isRepeat: false })
    } catch (error) {
      if (!isUniqueViolation(error)) throw error
      stored = await stepCompleteMany(this.deps.db, { steps: unique, isRepeat: true })
    }
    failpoint('complete-step:after-commit')
    this.deps.metrics.recordStepDurations(
      'completed',
      unique.flatMap((step) => {
        const run = stored.get(stepKey(step.runId, step.stepId))
        return run ? [{ namespace: run.namespace, job: run.job, durationMs: step.durationMs }] : []
      }),
    )
    const missed = items.filter((item) => !stored.has(stepKey(item.runId, item.stepId)))
    const outcomes = await this.findOutcomes(missed)
    return items.map((item) => (stored.has(stepKey(item.runId, item.stepId)) ? undefined : refusal(item, outcomes.get(item.runId))))
  }

  private async writeCompletions(items: Array<Fenced<RunCompletion>>): Promise<Array<undefined | Error>> {
    const unique = uniqueLeases(items)
    const counts = await runComplete(this.deps.db, { completions: unique })
    failpoint('complete-run:after-commit')
    this.deps.metrics.recordCompleted(counts)
    const completed = counts.reduce((sum, count) => sum + count.count, 0)
    if (completed === unique.length) return items.map(() => undefined)
    // Some leases were not held. A run completed under the same token was
    // completed by this attempt, now or by an earlier send whose answer was lost.
    const outcomes = await this.findOutcomes(unique)
    return items.map((item) => {
      const current = outcomes.get(item.runId)
      const isRepeat = current?.status === 'completed' && current.leaseToken === item.leaseToken && isWritersRun(item, current)
      return isRepeat ? undefined : refusal(item, current)
    })
  }

  private async writeFailures(items: Array<Fenced<RunFailure>>): Promise<Array<FailureResult | Error>> {
    const { results, afterCommit } = await this.deps.db.transaction(async (trx) => {
      const unique = uniqueLeases(items)
      const locked = await runLockHeldLeases(trx, { leases: unique })
      const byLease = new Map(unique.map((item) => [leaseKey(item.runId, item.leaseToken), item]))
      const failures: AttemptFailure[] = locked.map((run) => {
        const item = byLease.get(leaseKey(run.id, run.leaseToken))!
        return {
          run,
          outcome: 'failed',
          error: item.error,
          isRetriable: item.isRetriable,
          requestedDelayMs: item.retryDelayMs,
          failedStep: item.failedStep,
        }
      })
      const ending = await endFailedAttempts(trx, this.deps, failures)
      const byKey = new Map(locked.map((run) => [leaseKey(run.id, run.leaseToken), ending.results.get(run.id)!]))
      return { results: byKey, afterCommit: ending.afterCommit }
    })
    afterCommit()
    const missed = items.filter((item) => !results.has(leaseKey(item.runId, item.leaseToken)))
    const outcomes = await this.findOutcomes(missed)
    return items.map((item) => {
      const result = results.get(leaseKey(item.runId, item.leaseToken))
      if (result) return result
      const current = outcomes.get(item.runId)
      // The same attempt already reported this failure and the answer was lost
      // (only a worker's own report keeps the token on an ended attempt).
      if (
        current &&
        current.leaseToken === item.leaseToken &&
        isWritersRun(item, current) &&
        current.status !== 'running' &&
        current.status !== 'completed'
      ) {
        const status = publicStatus(current.status)
        if (status === 'queued' || status === 'failed') return { status, retryAt: undefined }
      }
      return refusal(item, current)
    })
  }

  private async writeReleases(items: Array<Fenced<LeaseRef>>): Promise<Array<undefined | Error>> {
    const released = await this.deps.db.transaction(async (trx) => {
      const rows = await runRelease(trx, { leases: uniqueLeases(items) })
      for (const [namespace, queues] of groupQueues(rows)) await this.deps.announcer.notifyOtherServers(trx, namespace, queues)
      return rows
    })
    for (const [namespace, queues] of groupQueues(released)) this.deps.announcer.announceLocally(namespace, queues)
    const releasedLeases = new Set(released.map((row) => leaseKey(row.id, row.lease_token)))
    const isReleased = (item: LeaseRef) => releasedLeases.has(leaseKey(item.runId, item.leaseToken))
    const outcomes = await this.findOutcomes(items.filter((item) => !isReleased(item)))
    return items.map((item) => (isReleased(item) ? undefined : refusal(item, outcomes.get(item.runId))))
  }

  private async writeHeartbeats(items: Array<{ lease: Fenced<LeaseRef>; leaseMs: number }>): Promise<boolean[]> {
    const byLeaseMs = new Map<number, Array<Fenced<LeaseRef>>>()
    for (const item of items) {
      const leases = byLeaseMs.get(item.leaseMs)
      if (leases) leases.push(item.lease)
      else byLeaseMs.set(item.leaseMs, [item.lease])
    }
    const extended = new Set<string>()
    for (const [leaseMs, leases] of byLeaseMs) {
      for (const key of await runHeartbeat(this.deps.db, { leases, leaseMs })) extended.add(key)
    }
    return items.map((item) => extended.has(leaseKey(item.lease.runId, item.lease.leaseToken)))
  }

  /** What became of the runs of writes that found no lease (the rare path: nothing to look up when every write took). */
  private async findOutcomes(items: readonly LeaseRef[]): Promise<Map<string, LeaseOutcome>> {
    if (items.length === 0) return new Map()
    return runFindLeaseOutcomes(this.deps.db, { runIds: items.map((item) => item.runId) })
  }
}

/** Why a single write about a run found no lease (see refusal). */
export async function explainLostLease(db: Executor, item: Fenced<LeaseRef>): Promise<Error> {
  const outcomes = await runFindLeaseOutcomes(db, { runIds: [item.runId] })
  return refusal(item, outcomes.get(item.runId))
}

/** Whether the write's writer may act in the run's namespace. */
function isWritersRun(item: Fenced<LeaseRef>, outcome: LeaseOutcome): boolean {
  return item.namespace === '*' || item.namespace === outcome.namespace
}

/** Why a write found no lease: the run is another namespace's, or the lease is not held (expired, ended, never this token's). */
function refusal(item: Fenced<LeaseRef>, outcome: LeaseOutcome | undefined): Error {
  if (outcome && !isWritersRun(item, outcome)) {
    return new PermissionDeniedError(`run ${item.runId} is not in namespace "${item.namespace}", the only one this writer may act in`)
  }
  return new LeaseLostError(item.runId)
}

/** Each lease once per writer's namespace (a retransmitted write may share a batch with the original), in run id order for lock order. */
function uniqueLeases<T extends Fenced<LeaseRef>>(items: readonly T[]): T[] {
  const unique = [...new Map(items.map((item) => [`${leaseKey(item.runId, item.leaseToken)}/${item.namespace}`, item])).values()]
  return unique.sort((a, b) => (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0))
}

function groupQueues(rows: ReadonlyArray<{ namespace: string; queue: string }>): Map<string, string[]> {
  const groups = new Map<string, Set<string>>()
  for (const row of rows) groups.set(row.namespace, (groups.get(row.namespace) ?? new Set()).add(row.queue))
  return new Map([...groups].map(([namespace, queues]) => [namespace, [...queues]]))
}
