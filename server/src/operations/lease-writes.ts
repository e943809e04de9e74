import type { Knex } from 'knex'
import { LeaseLostError } from '../core/errors.js'
import type { RetryBackoff } from '../core/retry-policy.js'
import { type ErrorInfo, type LeaseRef, publicStatus } from '../core/run.js'
import { isDataError } from '../db/errors.js'
import { runComplete, runFindLeaseOutcomes, runHeartbeat, runLockHeldLeases, runRelease } from '../db/queries/runs.js'
import { type StepCompletion, stepCompleteMany } from '../db/queries/steps.js'
import { type AttemptFailure, type FailureResult, endFailedAttempts } from './attempt-endings.js'
import { GroupCommit } from './group-commit.js'
import type { ReadyAnnouncer } from './ready-announcer.js'

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

const stepKey = (runId: string, stepId: string) => `${runId}/${stepId}`

/**
 * Everything a worker writes about its leased runs. Each kind of write goes
 * through its own group commit, so a thousand workers completing steps at once
 * cost a handful of statements, and each write is answered after its batch
 * committed. Every statement checks the lease (see db/queries/runs.ts); a
 * write without a held lease rejects with LeaseLostError and stores nothing.
 */
export class LeaseWrites {
  private readonly steps: GroupCommit<StepCompletion, void>
  private readonly completions: GroupCommit<LeaseRef & { resultJson: string | undefined }, void>
  private readonly failures: GroupCommit<RunFailure, FailureResult>
  private readonly releases: GroupCommit<LeaseRef, void>
  private readonly heartbeats: GroupCommit<{ lease: LeaseRef; leaseMs: number }, boolean>

  constructor(private readonly deps: { db: Knex; announcer: ReadyAnnouncer; backoff: RetryBackoff; writeConcurrency: number }) {
    const options = { maxBatchSize: 1000, maxInFlight: deps.writeConcurrency, isItemError: isDataError }
    this.steps = new GroupCommit((items) => this.writeSteps(items), options)
    this.completions = new GroupCommit((items) => this.writeCompletions(items), options)
    this.failures = new GroupCommit((items) => this.writeFailures(items), options)
    this.releases = new GroupCommit((items) => this.writeReleases(items), options)
    this.heartbeats = new GroupCommit((items) => this.writeHeartbeats(items), { ...options, maxBatchSize: 10_000 })
  }

  /** Memoizes a step result. */
  completeStep(step: StepCompletion): Promise<void> {
    return this.steps.submit(step)
  }

  /** Completes a run. Repeating a completion that already took effect succeeds. */
  completeRun(completion: LeaseRef & { resultJson: string | undefined }): Promise<void> {
    return this.completions.submit(completion)
  }

  /** Fails an attempt; the run is retried or ends FAILED. */
  failRun(failure: RunFailure): Promise<FailureResult> {
    return this.failures.submit(failure)
  }

  /** Hands a run back without counting the attempt. */
  releaseRun(lease: LeaseRef): Promise<void> {
    return this.releases.submit(lease)
  }

  /** Extends leases; returns those that are no longer held. */
  async heartbeat(leases: readonly LeaseRef[], leaseMs: number): Promise<RevokedLease[]> {
    const held = await Promise.all(leases.map((lease) => this.heartbeats.submit({ lease, leaseMs })))
    return leases.flatMap((lease, index) => (held[index] ? [] : [{ runId: lease.runId, reason: 'lease_lost' as const }]))
  }

  /** Resolves once every accepted write has been committed. */
  async drain(): Promise<void> {
    await Promise.all([this.steps.drain(), this.completions.drain(), this.failures.drain(), this.releases.drain(), this.heartbeats.drain()])
  }

  private async writeSteps(items: StepCompletion[]): Promise<Array<void | Error>> {
    // One statement cannot write the same row twice: a step sent twice in one
    // batch (a retransmission) is written once and answers both.
    const unique = new Map<string, StepCompletion>()
    for (const item of items) if (!unique.has(stepKey(item.runId, item.stepId))) unique.set(stepKey(item.runId, item.stepId), item)
    const stored = await stepCompleteMany(this.deps.db, { steps: [...unique.values()] })
    return items.map((item) => (stored.has(stepKey(item.runId, item.stepId)) ? undefined : new LeaseLostError(item.runId)))
  }

  private async writeCompletions(items: Array<LeaseRef & { resultJson: string | undefined }>): Promise<Array<void | Error>> {
    const sorted = [...new Map(items.map((item) => [item.runId, item])).values()].sort((a, b) => a.runId.localeCompare(b.runId))
    const completed = await runComplete(this.deps.db, { completions: sorted })
    const missed = items.filter((item) => !completed.has(item.runId))
    const outcomes = missed.length > 0 ? await runFindLeaseOutcomes(this.deps.db, { runIds: missed.map((item) => item.runId) }) : new Map()
    return items.map((item) => {
      if (completed.has(item.runId)) return undefined
      const current = outcomes.get(item.runId)
      // Already completed by this very attempt: the earlier answer was lost.
      if (current?.status === 'completed' && current.leaseToken === item.leaseToken) return undefined
      return new LeaseLostError(item.runId)
    })
  }

  private async writeFailures(items: RunFailure[]): Promise<Array<FailureResult | Error>> {
    const unique = [...new Map(items.map((item) => [item.runId, item])).values()]
    const { results, afterCommit } = await this.deps.db.transaction(async (trx) => {
      const locked = await runLockHeldLeases(trx, { leases: unique })
      const byId = new Map(unique.map((item) => [item.runId, item]))
      const failures: AttemptFailure[] = locked.map((run) => {
        const item = byId.get(run.id)!
        return {
          run,
          outcome: 'failed',
          error: item.error,
          isRetriable: item.isRetriable,
          requestedDelayMs: item.retryDelayMs,
          failedStep: item.failedStep,
        }
      })
      return endFailedAttempts(trx, this.deps, failures)
    })
    afterCommit()
    const missed = items.filter((item) => !results.has(item.runId))
    const outcomes = missed.length > 0 ? await runFindLeaseOutcomes(this.deps.db, { runIds: missed.map((item) => item.runId) }) : new Map()
    return items.map((item) => {
      const result = results.get(item.runId)
      if (result) return result
      const current = outcomes.get(item.runId)
      // The same attempt already reported this failure and the answer was lost.
      if (current && current.leaseToken === item.leaseToken && current.status !== 'running' && current.status !== 'completed') {
        const status = publicStatus(current.status)
        if (status === 'queued' || status === 'failed') return { status, retryAt: undefined }
      }
      return new LeaseLostError(item.runId)
    })
  }

  private async writeReleases(items: LeaseRef[]): Promise<Array<void | Error>> {
    const unique = [...new Map(items.map((item) => [item.runId, item])).values()]
    const released = await this.deps.db.transaction(async (trx) => {
      const rows = await runRelease(trx, { leases: unique })
      for (const [namespace, queues] of groupQueues(rows)) await this.deps.announcer.notifyOtherServers(trx, namespace, queues)
      return rows
    })
    for (const [namespace, queues] of groupQueues(released)) this.deps.announcer.announceLocally(namespace, queues)
    const releasedIds = new Set(released.map((row) => row.id))
    return items.map((item) => (releasedIds.has(item.runId) ? undefined : new LeaseLostError(item.runId)))
  }

  private async writeHeartbeats(items: Array<{ lease: LeaseRef; leaseMs: number }>): Promise<boolean[]> {
    const byLeaseMs = new Map<number, LeaseRef[]>()
    for (const item of items) {
      const leases = byLeaseMs.get(item.leaseMs)
      if (leases) leases.push(item.lease)
      else byLeaseMs.set(item.leaseMs, [item.lease])
    }
    const extended = new Set<string>()
    for (const [leaseMs, leases] of byLeaseMs) {
      for (const id of await runHeartbeat(this.deps.db, { leases, leaseMs })) extended.add(id)
    }
    return items.map((item) => extended.has(item.lease.runId))
  }
}

function groupQueues(rows: ReadonlyArray<{ namespace: string; queue: string }>): Map<string, string[]> {
  const groups = new Map<string, Set<string>>()
  for (const row of rows) groups.set(row.namespace, (groups.get(row.namespace) ?? new Set()).add(row.queue))
  return new Map([...groups].map(([namespace, queues]) => [namespace, [...queues]]))
}
