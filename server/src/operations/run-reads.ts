import type { Knex } from 'knex'
import { NotFoundError } from '../core/errors.js'
import { childRunList } from '../db/queries/child-runs.js'
import { type RunDetails, type RunFilter, type RunRecord, buildAttemptHistory, finishedStatuses, publicStatus } from '../core/run.js'
import { isUuid } from '../core/run-id.js'
import { attemptListForRun, runGet, runList, runListFinished, runMarkWaitedFor, stepListForRun } from '../db/queries/run-reads.js'
import type { FlowWait } from '../core/flow-wait.js'
import type { Logger } from '../logger.js'
import type { FlowPolicies } from './flow-policies.js'

/**
 * Wakes WaitForRun calls when their run finishes. Fed by the notification
 * listener: a trigger sends the notice from whichever server finished the run.
 * A notice can be lost (the LISTEN connection dropped, or went half-open
 * without either side noticing for a while), so while anyone waits, the
 * waited-for runs are also checked in one query every `recheckIntervalMs`:
 * a WaitForRun returns at most that long after its run finished, notice or
 * not.
 */
export class RunWaiters {
  private readonly waiting = new Map<string, Set<() => void>>()
  private recheckTimer: NodeJS.Timeout | undefined
  private isRechecking = false

  constructor(private readonly deps: { db: Knex; logger: Logger; recheckIntervalMs: number }) {}

  /** Calls `onFinished` once the run is reported finished (or a recheck is due). Returns a disposer. */
  add(runId: string, onFinished: () => void): () => void {
    const set = this.waiting.get(runId) ?? new Set()
    set.add(onFinished)
    this.waiting.set(runId, set)
    this.recheckTimer ??= setInterval(() => void this.recheck(), this.deps.recheckIntervalMs).unref()
    return () => {
      set.delete(onFinished)
      if (set.size === 0) this.waiting.delete(runId)
      if (this.waiting.size === 0) this.stopRechecks()
    }
  }

  /** A run finished. */
  notify(runId: string): void {
    for (const wake of this.waiting.get(runId) ?? []) wake()
  }

  /** Notices may have been missed (the listener reconnected): every waiter rechecks. */
  notifyAll(): void {
    for (const set of this.waiting.values()) for (const wake of set) wake()
  }

  stopRechecks(): void {
    clearInterval(this.recheckTimer)
    this.recheckTimer = undefined
  }

  private async recheck(): Promise<void> {
    if (this.isRechecking || this.waiting.size === 0) return
    this.isRechecking = true
    try {
      for (const runId of await runListFinished(this.deps.db, { runIds: [...this.waiting.keys()] })) this.notify(runId)
    } catch (error) {
      this.deps.logger.warn({ err: error }, 'could not recheck the runs WaitForRun calls wait for')
    } finally {
      this.isRechecking = false
    }
  }
}

/** Reads runs for clients. */
export class RunReads {
  constructor(private readonly deps: { db: Knex; waiters: RunWaiters; policies: FlowPolicies }) {}

  /** The run with its steps, attempt history, child runs, and the flow-control limit it waits for, if any. */
  async getRun(namespace: string, runId: string): Promise<RunDetails> {
    // An id that is not a UUID cannot name a run; answer as for any unknown id.
    if (!isUuid(runId)) throw new NotFoundError(`run ${runId} not found in namespace ${namespace}`)
    // One snapshot for the run, its steps, its attempts and its children: read
    // one after the other, an attempt that ends between the reads would show a
    // RUNNING run whose current attempt has already failed.
    const details = await this.deps.db.transaction(
      async (trx) => {
        const run = await runGet(trx, { namespace, runId })
        if (!run) throw new NotFoundError(`run ${runId} not found in namespace ${namespace}`)
        const steps = await stepListForRun(trx, { runId })
        const attempts = await attemptListForRun(trx, { runId })
        const children = await childRunList(trx, { parentRunId: runId })
        return { ...run, steps, attemptHistory: buildAttemptHistory(run, attempts), children }
      },
      { isolationLevel: 'repeatable read', readOnly: true },
    )
    // The limit is counted as it is now, after the snapshot: it says why the run is not starting yet.
    const flowWait = details.status === 'queued' ? await this.deps.policies.flowWaitOf(details) : undefined
    return { ...details, flowWait }
  }

  /**
   * A page of runs, newest first, and the cursor of the next page if there is
   * one. Queued runs under flow control say what limit they wait for (one
   * count per such run; other runs cost nothing more).
   */
  async listRuns(
    filter: RunFilter,
  ): Promise<{ runs: Array<RunRecord & { flowWait: FlowWait | undefined }>; nextCursor: string | undefined }> {
    const rows = await runList(this.deps.db, { ...filter, limit: filter.limit + 1 })
    const page = rows.slice(0, filter.limit)
    const runs = await Promise.all(
      page.map(async (run) => ({
        ...run,
        flowWait: run.status === 'queued' && run.concurrencyKey !== undefined ? await this.deps.policies.flowWaitOf(run) : undefined,
      })),
    )
    return { runs, nextCursor: rows.length > filter.limit ? page.at(-1)!.id : undefined }
  }

  /**
   * The run once it has finished, or as it is when `timeoutMs` passes or
   * `signal` aborts (the client went away).
   */
  async waitForRun(
    namespace: string,
    runId: string,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<{ run: RunDetails; isFinished: boolean }> {
    let run = await this.getRun(namespace, runId)
    if (isFinished(run) || timeoutMs === 0) return { run, isFinished: isFinished(run) }

    let wake: () => void = () => {}
    let woken = new Promise<void>((resolve) => (wake = resolve))
    const dispose = this.deps.waiters.add(runId, () => wake())
    const deadline = Date.now() + timeoutMs
    try {
      // Mark first, then read: a run that finishes after the mark notifies,
      // and one that finished before it is seen by the read.
      await runMarkWaitedFor(this.deps.db, { namespace, runId })
      run = await this.getRun(namespace, runId)
      while (!isFinished(run) && !signal.aborted) {
        const remainingMs = deadline - Date.now()
        if (remainingMs <= 0) break
        const timedOut = await raceTimeout(woken, remainingMs, signal)
        woken = new Promise<void>((resolve) => (wake = resolve))
        run = await this.getRun(namespace, runId)
        if (timedOut) break
      }
    } finally {
      dispose()
    }
    return { run, isFinished: isFinished(run) }
  }
}

function isFinished(run: RunDetails): boolean {
  return finishedStatuses.has(publicStatus(run.status))
}

/** Resolves true when `ms` passes (or `signal` aborts) before `promise`. */
function raceTimeout(promise: Promise<void>, ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => finish(true), ms)
    const onAbort = () => finish(true)
    signal.addEventListener('abort', onAbort, { once: true })
    void promise.then(() => finish(false))
    function finish(timedOut: boolean) {
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      resolve(timedOut)
    }
  })
}
