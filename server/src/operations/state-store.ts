import { setTimeout as sleep } from 'node:timers/promises'
import type { Knex } from 'knex'
import { FailedPreconditionError, InvalidArgumentError } from '../core/errors.js'
import type { LeaseRef, LockRecord, StateEntry } from '../core/run.js'
import type { Executor } from '../db/database.js'
import { runLockHeldLease } from '../db/queries/lease-writes.js'
import { explainLostLease } from './lease-writes.js'
import {
  stateDelete,
  stateGet,
  stateIncrement,
  stateList,
  stateReplaceVersion,
  stateSet,
  stateSetIfAbsent,
  stateValueType,
} from '../db/queries/state-entries.js'
import { lockExtend, lockHoldFencingToken, lockRelease, lockTryAcquire } from '../db/queries/state-locks.js'
import { stepFindResult, stepRecordState } from '../db/queries/step-memo.js'

/** A value operation made inside a run: its lease and its id within the run. */
export interface RunScope extends LeaseRef {
  opId: string
}

/** Where an operation applies: a namespace, and the run it is part of, if any. */
export interface StateTarget {
  namespace: string
  key: string
  run: RunScope | undefined
}

/**
 * How an operation's result is recorded inside a run (the protocol documents
 * each shape). `fromRecord` returns undefined for a record of another shape:
 * one another operation of the run recorded under the same id.
 */
interface Codec<T> {
  toRecord: (result: T) => string
  fromRecord: (record: string) => T | undefined
}

/** Results recorded as their JSON: objects of exactly these fields, of these types. */
const plainJson = <T>(fields: Record<string, 'number' | 'boolean'>): Codec<T> => ({
  toRecord: (result) => JSON.stringify(result),
  fromRecord: (record) => {
    const parsed: unknown = JSON.parse(record)
    if (!isObject(parsed)) return undefined
    const entries = Object.entries(parsed)
    const hasShape =
      entries.length === Object.keys(fields).length &&
      entries.every(([name, value]) => fields[name] !== undefined && typeof value === fields[name])
    return hasShape ? (parsed as T) : undefined
  },
})

const entryCodec: Codec<{ entry: StateEntry | undefined }> = {
  toRecord: ({ entry }) =>
    entry
      ? `{"entry":{"value":${entry.valueJson},"version":${entry.version},"expiresAt":${entry.expiresAt ? `"${entry.expiresAt.toISOString()}"` : 'null'},"updatedAt":"${entry.updatedAt.toISOString()}"}}`
      : '{"entry":null}',
  fromRecord: (record) => {
    const parsed: unknown = JSON.parse(record)
    if (!isObject(parsed) || Object.keys(parsed).length !== 1 || !('entry' in parsed)) return undefined
    const entry = parsed.entry
    if (entry === null) return { entry: undefined }
    if (!isObject(entry) || typeof entry.version !== 'number' || typeof entry.updatedAt !== 'string') return undefined
    return {
      entry: {
        key: '',
        valueJson: JSON.stringify(entry.value),
        version: entry.version,
        expiresAt: typeof entry.expiresAt === 'string' ? new Date(entry.expiresAt) : undefined,
        updatedAt: new Date(entry.updatedAt),
      },
    }
  },
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * The State Store. Outside a run each operation is one transaction. Inside a
 * run (a RunScope) the operation applies at most once per run: under the
 * run's row lock (so the lease holds and operations of the run do not
 * overlap), a recorded result for the operation id is returned as is;
 * otherwise the effect is applied and recorded as a 'state' step in the same
 * transaction.
 */
export class StateStore {
  constructor(private readonly deps: { db: Knex }) {}

  get(target: StateTarget): Promise<{ entry: StateEntry | undefined }> {
    const codec: Codec<{ entry: StateEntry | undefined }> = {
      toRecord: entryCodec.toRecord,
      fromRecord: (record) => {
        const recorded = entryCodec.fromRecord(record)
        return recorded && { entry: recorded.entry && { ...recorded.entry, key: target.key } }
      },
    }
    return this.apply(target, codec, 0, async (db) => ({ entry: await stateGet(db, target) }))
  }

  set(target: StateTarget, params: { valueJson: string; ttlMs: number; fencingToken: number }): Promise<{ version: number }> {
    return this.apply(target, plainJson({ version: 'number' }), params.fencingToken, async (db) => {
      await this.checkFencing(db, target.namespace, params.fencingToken)
      return { version: await stateSet(db, { ...target, ...params }) }
    })
  }

  delete(target: StateTarget, params: { fencingToken: number }): Promise<{ deleted: boolean }> {
    return this.apply(target, plainJson({ deleted: 'boolean' }), params.fencingToken, async (db) => {
      await this.checkFencing(db, target.namespace, params.fencingToken)
      return { deleted: await stateDelete(db, target) }
    })
  }

  increment(target: StateTarget, params: { delta: number; ttlMs: number }): Promise<{ value: number; version: number }> {
    return this.apply(target, plainJson({ value: 'number', version: 'number' }), 0, async (db) => {
      const result = await stateIncrement(db, { ...target, ...params })
      if (result) return result
      const type = await stateValueType(db, target)
      throw new FailedPreconditionError(`state key "${target.key}" holds a ${type ?? 'value'}, not a number; it cannot be incremented`)
    })
  }

  setIfAbsent(target: StateTarget, params: { valueJson: string; ttlMs: number }): Promise<{ set: boolean }> {
    return this.apply(target, plainJson({ set: 'boolean' }), 0, async (db) => ({
      set: (await stateSetIfAbsent(db, { ...target, ...params })) !== undefined,
    }))
  }

  compareAndSet(
    target: StateTarget,
    params: { expectedVersion: number; valueJson: string; ttlMs: number; fencingToken: number },
  ): Promise<{ swapped: boolean; version: number }> {
    return this.apply(target, plainJson({ swapped: 'boolean', version: 'number' }), params.fencingToken, async (db) => {
      await this.checkFencing(db, target.namespace, params.fencingToken)
      const version =
        params.expectedVersion === 0
          ? await stateSetIfAbsent(db, { ...target, ...params })
          : await stateReplaceVersion(db, { ...target, ...params })
      if (version !== undefined) return { swapped: true, version }
      return { swapped: false, version: (await stateGet(db, target))?.version ?? 0 }
    })
  }

  /** A page of live entries by key prefix, and the key to continue after if there are more. */
  async list(params: {
    namespace: string
    prefix: string
    afterKey: string | undefined
    limit: number
  }): Promise<{ entries: StateEntry[]; lastKey: string | undefined }> {
    const rows = await stateList(this.deps.db, { ...params, limit: params.limit + 1 })
    const entries = rows.slice(0, params.limit)
    return { entries, lastKey: rows.length > params.limit ? entries.at(-1)!.key : undefined }
  }

  /**
   * Takes a lock, retrying while it is held until `waitMs` has passed or
   * `signal` aborts. A caller that went away will never learn it holds the
   * lock: a wait for it ends, and a lock taken for it as it left is released
   * at once, not held by nobody until its TTL runs out. (Each wait polls
   * every 100 ms, up to a minute: a caller cancelling many would also leave
   * their statements behind.) Returns undefined if it could not.
   */
  async acquireLock(
    params: { namespace: string; key: string; ttlMs: number; waitMs: number },
    signal?: AbortSignal,
  ): Promise<LockRecord | undefined> {
    const deadline = Date.now() + params.waitMs
    for (let pauseMs = 10; ; pauseMs = Math.min(pauseMs * 2, 100)) {
      if (signal?.aborted) return undefined
      const lock = await lockTryAcquire(this.deps.db, params)
      if (lock && signal?.aborted) {
        await lockRelease(this.deps.db, { namespace: params.namespace, key: params.key, lockId: lock.lockId })
        return undefined
      }
      if (lock) return lock
      const remainingMs = deadline - Date.now()
      if (remainingMs <= 0) return undefined
      await sleep(Math.min(pauseMs, remainingMs))
    }
  }

  async extendLock(params: { namespace: string; key: string; lockId: string; ttlMs: number }): Promise<LockRecord> {
    const lock = await lockExtend(this.deps.db, params)
    if (!lock) throw new FailedPreconditionError(`lock "${params.key}" is not held by lock id ${params.lockId}: it expired or was released`)
    return lock
  }

  async releaseLock(params: { namespace: string; key: string; lockId: string }): Promise<void> {
    if (!(await lockRelease(this.deps.db, params))) {
      throw new FailedPreconditionError(`lock "${params.key}" is not held by lock id ${params.lockId}: it was taken over or released`)
    }
  }

  private async checkFencing(db: Executor, namespace: string, fencingToken: number): Promise<void> {
    if (fencingToken === 0) return
    if (!(await lockHoldFencingToken(db, { namespace, fencingToken }))) {
      throw new FailedPreconditionError(`fencing token ${fencingToken} is stale: the lock that issued it is no longer held with it`)
    }
  }

  /**
   * Runs `effect` as the operation on `target`. A plain operation is its one
   * statement; a fenced one (the lock row stays locked until the write
   * commits) or one inside a run needs a transaction.
   */
  private apply<T>(target: StateTarget, codec: Codec<T>, fencingToken: number, effect: (db: Executor) => Promise<T>): Promise<T> {
    const { run } = target
    if (!run && fencingToken === 0) return effect(this.deps.db)
    return this.deps.db.transaction(async (trx) => {
      if (!run) return effect(trx)
      // The run must be in the namespace the operation acts in: a key of that namespace holding another's lease gets nothing.
      const lease = { ...run, namespace: target.namespace }
      const attempt = await runLockHeldLease(trx, lease)
      if (attempt === undefined) throw await explainLostLease(trx, lease)
      const recorded = await stepFindResult(trx, { runId: run.runId, stepId: run.opId })
      if (recorded !== undefined) {
        // The id is taken by a step, or by another operation: answering with
        // its record would answer for something else.
        const result = recorded.kind === 'state' && recorded.isCompleted ? codec.fromRecord(recorded.resultJson) : undefined
        if (result === undefined) {
          throw new InvalidArgumentError(
            'run.op_id',
            recorded.kind === 'state'
              ? 'was used in this run by another State Store operation; each operation of a run needs an id of its own'
              : `is the id of a ${recorded.kind} step of this run; a State Store operation needs an id of its own`,
          )
        }
        return result
      }
      const result = await effect(trx)
      await stepRecordState(trx, { runId: run.runId, stepId: run.opId, attempt, resultJson: codec.toRecord(result) })
      return result
    })
  }
}
