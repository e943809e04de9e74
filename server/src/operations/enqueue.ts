import type { Knex } from 'knex'
import { runIdTime } from '../core/run-id.js'
import type { ClaimedRun, NewRun } from '../core/run.js'
import type { Executor } from '../db/database.js'
import { InvalidArgumentError } from '../core/errors.js'
import { isDataError } from '../db/errors.js'
import {
  type InsertLease,
  type InsertedRun,
  runDebounceMany,
  runFindByIdempotencyKeys,
  runInsertMany,
  runReleaseExpiredIdempotencyKeys,
} from '../db/queries/enqueue.js'
import type { Reservation } from '../dispatch/dispatcher.js'
import { failpoint } from '../failpoints.js'
import type { ServerMetrics } from '../observability/metrics.js'
import type { FlowPlacement, FlowPolicies } from './flow-policies.js'
import { GroupCommit } from './group-commit.js'
import type { ReadyAnnouncer } from './ready-announcer.js'

/** The outcome of enqueueing one run. */
export interface EnqueueOutcome {
  runId: string
  /** True when an idempotency key matched a live run and nothing was stored. */
  isDeduplicated: boolean
}

/** What the insert stored for a run, when it stored it. */
interface WrittenRun extends EnqueueOutcome {
  inserted: InsertedRun | undefined
}

// A key can be released (run failed, TTL ran out) between our insert and our
// lookup; then we insert again. Each round resolves every key that raced, so
// more than a few rounds would mean a bug, not contention.
const maxIdempotencyRounds = 5

/**
 * Stores new runs. Single enqueues from concurrent callers are merged into
 * one multi-row insert (group commit); a batch from one caller is one
 * transaction. A single run that is ready at once and has an idle worker on
 * this server waiting for it is inserted already leased to that worker and
 * handed over after the commit. Other ready runs wake a waiting worker: on this
 * server directly, on other servers through one NOTIFY per statement.
 *
 * Flow control (operations/flow-policies.ts) places each run: runs under a
 * claim-time policy are stored with their key value and never handed to an
 * idle worker directly (that would bypass the flow claim's limits); runs of
 * a debounced job merge into the pending run of their key.
 */
export class RunEnqueuer {
  private readonly singles: GroupCommit<{ namespace: string; run: NewRun }, EnqueueOutcome>

  constructor(
    private readonly deps: {
      db: Knex
      announcer: ReadyAnnouncer
      metrics: ServerMetrics
      policies: FlowPolicies
      writeConcurrency: number
      /** A free slot of an idle local worker for a run of this queue and job, if there is one. */
      reserveIdle: (namespace: string, queue: string, job: string) => Reservation | undefined
    },
  ) {
    this.singles = new GroupCommit((items) => this.writeSingles(items), {
      maxBatchSize: 1000,
      maxInFlight: deps.writeConcurrency,
      itemsName: 'enqueues',
      isItemError: isDataError,
    })
  }

  /** Enqueues one run; concurrent calls share a statement. */
  enqueue(namespace: string, run: NewRun): Promise<EnqueueOutcome> {
    return this.singles.submit({ namespace, run })
  }

  /** Enqueues runs atomically: all are stored, or none. Outcomes in input order. */
  async enqueueBatch(namespace: string, runs: readonly NewRun[]): Promise<EnqueueOutcome[]> {
    const written = await this.deps.db.transaction((trx) => this.insert(trx, namespace, runs, []))
    failpoint('enqueue:after-commit')
    this.announce(namespace, runs, written)
    this.deps.metrics.recordEnqueued(namespace, storedRuns(runs, written))
    return written.map(toOutcome)
  }

  /** Resolves once every accepted single enqueue has been written. */
  drain(): Promise<void> {
    return this.singles.drain()
  }

  private async writeSingles(items: Array<{ namespace: string; run: NewRun }>): Promise<EnqueueOutcome[]> {
    const byNamespace = new Map<string, number[]>()
    items.forEach((item, index) => {
      const indexes = byNamespace.get(item.namespace) ?? []
      indexes.push(index)
      byNamespace.set(item.namespace, indexes)
    })
    const outcomes = new Array<EnqueueOutcome>(items.length)
    for (const [namespace, indexes] of byNamespace) {
      const runs = indexes.map((i) => items[i]!.run)
      const reservations = runs.map((run) =>
        isReadyNow(run) &&
        !this.deps.policies.isFlowControlled(namespace, run.queue, run.job) &&
        !this.deps.policies.jobPolicies(namespace, run.job)?.debounce
          ? this.deps.reserveIdle(namespace, run.queue, run.job)
          : undefined,
      )
      let written: WrittenRun[]
      try {
        written = await this.insert(this.deps.db, namespace, runs, reservations)
      } catch (error) {
        for (const reservation of reservations) reservation?.cancel()
        throw error
      }
      failpoint('enqueue:after-commit')
      written.forEach((run, i) => {
        const reservation = reservations[i]
        if (!reservation) return
        if (run.inserted?.lease) reservation.deliver(toClaimedRun(namespace, runs[i]!, run.inserted))
        else reservation.cancel()
      })
      indexes.forEach((itemIndex, i) => (outcomes[itemIndex] = toOutcome(written[i]!)))
      this.announce(namespace, runs, written)
      this.deps.metrics.recordEnqueued(namespace, storedRuns(runs, written))
    }
    return outcomes
  }

  /**
   * Inserts runs and resolves idempotency keys. Entries that share a key with
   * an earlier entry of the same call get that entry's outcome. Keys that are
   * taken resolve to the run holding them; keys whose TTL ran out are released
   * and the insert is retried. Runs with a reservation are inserted leased to
   * its worker.
   */
  private async insert(
    db: Executor,
    namespace: string,
    runs: readonly NewRun[],
    reservations: ReadonlyArray<Reservation | undefined>,
  ): Promise<WrittenRun[]> {
    const written = new Array<WrittenRun | undefined>(runs.length)
    const placements = runs.map((run) => this.deps.policies.placementOf(namespace, run))
    const debounced = await this.debounce(db, namespace, runs, placements)
    for (const [index, runId] of debounced) written[index] = { runId, isDeduplicated: false, inserted: undefined }
    const firstIndexByKey = new Map<string, number>()
    const duplicateOf = new Map<number, number>()
    runs.forEach((run, index) => {
      if (run.idempotencyKey === undefined || debounced.has(index)) return
      const first = firstIndexByKey.get(run.idempotencyKey)
      if (first === undefined) firstIndexByKey.set(run.idempotencyKey, index)
      else duplicateOf.set(index, first)
    })

    let pending = runs.map((_, index) => index).filter((index) => !duplicateOf.has(index) && !debounced.has(index))
    for (let round = 0; pending.length > 0; round++) {
      if (round === maxIdempotencyRounds) throw new Error(`idempotency keys kept changing while enqueueing (${pending.length} left)`)
      const attempt = pending.map((index) => runs[index]!)
      const leases = pending.map((index): InsertLease | undefined => {
        const consumer = reservations[index]?.consumer
        return consumer ? { leaseMs: consumer.leaseMs, workerId: consumer.workerId } : undefined
      })
      const inserted = await runInsertMany(db, {
        namespace,
        runs: attempt,
        concurrencyKeys: pending.map((index) => placements[index]!.concurrencyKey),
        leases,
        readyNotice: this.deps.announcer.encodeNotice(namespace, readyQueues(attempt.filter((_, i) => !leases[i]))),
      })
      const conflicting: number[] = []
      for (const index of pending) {
        const run = runs[index]!
        const stored = inserted.get(run.id)
        if (stored) written[index] = { runId: run.id, isDeduplicated: false, inserted: stored }
        else conflicting.push(index)
      }
      if (conflicting.length === 0) break

      const keys = conflicting.map((index) => runs[index]!.idempotencyKey!)
      const holders = new Map((await runFindByIdempotencyKeys(db, { namespace, keys })).map((h) => [h.idempotencyKey, h]))
      const expiredKeys: string[] = []
      pending = []
      for (const index of conflicting) {
        const holder = holders.get(runs[index]!.idempotencyKey!)
        if (holder && !holder.isExpired) written[index] = { runId: holder.id, isDeduplicated: true, inserted: undefined }
        else {
          if (holder) expiredKeys.push(holder.idempotencyKey)
          pending.push(index)
        }
      }
      if (expiredKeys.length > 0) await runReleaseExpiredIdempotencyKeys(db, { namespace, keys: expiredKeys })
    }

    for (const [index, first] of duplicateOf) written[index] = { runId: written[first]!.runId, isDeduplicated: true, inserted: undefined }
    return written as WrittenRun[]
  }

  /**
   * Stores the runs of debounced jobs: each merges into its key's pending run
   * (new payload, later start) or becomes that pending run. Within one call,
   * the last run of a key wins and the others get its id. Returns the run id
   * of each debounced entry, by index.
   */
  private async debounce(
    db: Executor,
    namespace: string,
    runs: readonly NewRun[],
    placements: readonly FlowPlacement[],
  ): Promise<Map<number, string>> {
    const lastByKey = new Map<string, number>()
    placements.forEach((placement, index) => {
      if (!placement.debounce) return
      if (runs[index]!.idempotencyKey !== undefined)
        throw new InvalidArgumentError('run.idempotency_key', `cannot be used with job ${runs[index]!.job}, which is debounced`)
      lastByKey.set(`${runs[index]!.job}\u0000${placement.debounce.key}`, index)
    })
    const ids = new Map<number, string>()
    if (lastByKey.size === 0) return ids
    const last = [...lastByKey.values()]
    const stored = await runDebounceMany(db, {
      namespace,
      runs: last.map((index) => ({ run: runs[index]!, placement: placements[index]! })),
    })
    const idByKey = new Map<string, string>()
    last.forEach((index, i) => idByKey.set(`${runs[index]!.job}\u0000${placements[index]!.debounce!.key}`, stored[i]!))
    placements.forEach((placement, index) => {
      if (placement.debounce) ids.set(index, idByKey.get(`${runs[index]!.job}\u0000${placement.debounce.key}`)!)
    })
    this.deps.announcer.announceScheduled(Math.min(...last.map((index) => placements[index]!.debounce!.periodMs)))
    return ids
  }

  /** Wakes workers for stored runs that wait to be claimed, and timers for delayed ones. */
  private announce(namespace: string, runs: readonly NewRun[], written: readonly WrittenRun[]): void {
    const waiting = runs.filter((_, index) => {
      const { inserted } = written[index]!
      return inserted !== undefined && !inserted.lease
    })
    this.deps.announcer.announceLocally(namespace, readyQueues(waiting))
    const delays = waiting.filter((run) => !isReadyNow(run)).map((run) => (run.runAt ? run.runAt.getTime() - Date.now() : run.delayMs))
    if (delays.length > 0) this.deps.announcer.announceScheduled(Math.min(...delays))
  }
}

/** The runs that were inserted, not deduplicated. */
function storedRuns(runs: readonly NewRun[], written: readonly WrittenRun[]): NewRun[] {
  return runs.filter((_, index) => written[index]!.inserted)
}

function toOutcome(written: WrittenRun): EnqueueOutcome {
  return { runId: written.runId, isDeduplicated: written.isDeduplicated }
}

function toClaimedRun(namespace: string, run: NewRun, inserted: InsertedRun): ClaimedRun {
  return {
    id: run.id,
    namespace,
    queue: run.queue,
    job: run.job,
    payloadJson: run.payloadJson,
    attempt: 1,
    maxAttempts: run.maxAttempts,
    leaseToken: inserted.lease!.token,
    leaseExpiresAt: inserted.lease!.expiresAt,
    createdAt: new Date(runIdTime(run.id)),
    availableAt: inserted.lease!.availableAt,
    memo: [],
    traceContext: run.traceContext,
  }
}

function isReadyNow(run: NewRun): boolean {
  return run.runAt ? run.runAt.getTime() <= Date.now() : run.delayMs <= 0
}

function readyQueues(runs: readonly NewRun[]): string[] {
  return [...new Set(runs.filter(isReadyNow).map((run) => run.queue))]
}
