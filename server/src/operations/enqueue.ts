import type { Knex } from 'knex'
import type { NewRun } from '../core/run.js'
import type { Executor } from '../db/database.js'
import { isDataError } from '../db/errors.js'
import { runFindByIdempotencyKeys, runInsertMany, runReleaseExpiredIdempotencyKeys } from '../db/queries/runs.js'
import { GroupCommit } from './group-commit.js'
import type { ReadyAnnouncer } from './ready-announcer.js'

/** The outcome of enqueueing one run. */
export interface EnqueueOutcome {
  runId: string
  /** True when an idempotency key matched a live run and nothing was stored. */
  isDeduplicated: boolean
}

// A key can be released (run failed, TTL ran out) between our insert and our
// lookup; then we insert again. Each round resolves every key that raced, so
// more than a few rounds would mean a bug, not contention.
const maxIdempotencyRounds = 5

/**
 * Stores new runs. Single enqueues from concurrent callers are merged into
 * one multi-row insert (group commit); a batch from one caller is one
 * transaction. Either way, runs that are ready now wake a waiting worker: on
 * this server directly, on other servers through one NOTIFY per statement.
 */
export class RunEnqueuer {
  private readonly singles: GroupCommit<{ namespace: string; run: NewRun }, EnqueueOutcome>

  constructor(private readonly deps: { db: Knex; announcer: ReadyAnnouncer; writeConcurrency: number }) {
    this.singles = new GroupCommit((items) => this.writeSingles(items), {
      maxBatchSize: 1000,
      maxInFlight: deps.writeConcurrency,
      isItemError: isDataError,
    })
  }

  /** Enqueues one run; concurrent calls share a statement. */
  enqueue(namespace: string, run: NewRun): Promise<EnqueueOutcome> {
    return this.singles.submit({ namespace, run })
  }

  /** Enqueues runs atomically: all are stored, or none. Outcomes in input order. */
  async enqueueBatch(namespace: string, runs: readonly NewRun[]): Promise<EnqueueOutcome[]> {
    const outcomes = await this.deps.db.transaction((trx) => this.insert(trx, namespace, runs))
    this.announce(namespace, runs, outcomes)
    return outcomes
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
    const outcomes: EnqueueOutcome[] = new Array(items.length)
    for (const [namespace, indexes] of byNamespace) {
      const runs = indexes.map((i) => items[i]!.run)
      const written = await this.insert(this.deps.db, namespace, runs)
      indexes.forEach((itemIndex, i) => (outcomes[itemIndex] = written[i]!))
      this.announce(namespace, runs, written)
    }
    return outcomes
  }

  /**
   * Inserts runs and resolves idempotency keys. Entries that share a key with
   * an earlier entry of the same call get that entry's outcome. Keys that are
   * taken resolve to the run holding them; keys whose TTL ran out are released
   * and the insert is retried.
   */
  private async insert(db: Executor, namespace: string, runs: readonly NewRun[]): Promise<EnqueueOutcome[]> {
    const outcomes: Array<EnqueueOutcome | undefined> = new Array(runs.length)
    const firstIndexByKey = new Map<string, number>()
    const duplicateOf = new Map<number, number>()
    runs.forEach((run, index) => {
      if (run.idempotencyKey === undefined) return
      const first = firstIndexByKey.get(run.idempotencyKey)
      if (first === undefined) firstIndexByKey.set(run.idempotencyKey, index)
      else duplicateOf.set(index, first)
    })

    let pending = runs.map((_, index) => index).filter((index) => !duplicateOf.has(index))
    for (let round = 0; pending.length > 0; round++) {
      if (round === maxIdempotencyRounds) throw new Error(`idempotency keys kept changing while enqueueing (${pending.length} left)`)
      const attempt = pending.map((index) => runs[index]!)
      const inserted = await runInsertMany(db, {
        namespace,
        runs: attempt,
        readyNotice: this.deps.announcer.encodeNotice(namespace, readyQueues(attempt)),
      })
      const conflicting: number[] = []
      for (const index of pending) {
        const run = runs[index]!
        if (inserted.has(run.id)) outcomes[index] = { runId: run.id, isDeduplicated: false }
        else conflicting.push(index)
      }
      if (conflicting.length === 0) break

      const keys = conflicting.map((index) => runs[index]!.idempotencyKey!)
      const holders = new Map((await runFindByIdempotencyKeys(db, { namespace, keys })).map((h) => [h.idempotencyKey, h]))
      const expiredKeys: string[] = []
      pending = []
      for (const index of conflicting) {
        const holder = holders.get(runs[index]!.idempotencyKey!)
        if (holder && !holder.isExpired) outcomes[index] = { runId: holder.id, isDeduplicated: true }
        else {
          if (holder) expiredKeys.push(holder.idempotencyKey)
          pending.push(index)
        }
      }
      if (expiredKeys.length > 0) await runReleaseExpiredIdempotencyKeys(db, { namespace, keys: expiredKeys })
    }

    for (const [index, first] of duplicateOf) outcomes[index] = { runId: outcomes[first]!.runId, isDeduplicated: true }
    return outcomes as EnqueueOutcome[]
  }

  private announce(namespace: string, runs: readonly NewRun[], outcomes: readonly EnqueueOutcome[]): void {
    const stored = runs.filter((_, index) => !outcomes[index]!.isDeduplicated)
    this.deps.announcer.announceLocally(namespace, readyQueues(stored))
    const delays = stored.filter((run) => !isReadyNow(run)).map((run) => (run.runAt ? run.runAt.getTime() - Date.now() : run.delayMs))
    if (delays.length > 0) this.deps.announcer.announceScheduled(Math.min(...delays))
  }
}

function isReadyNow(run: NewRun): boolean {
  return run.runAt ? run.runAt.getTime() <= Date.now() : run.delayMs <= 0
}

function readyQueues(runs: readonly NewRun[]): string[] {
  return [...new Set(runs.filter(isReadyNow).map((run) => run.queue))]
}
