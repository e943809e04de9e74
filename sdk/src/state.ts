import type { Lock as LockMessage, RunScope, StateEntry as StateEntryMessage, StateServiceClient } from '@stackshift/proto/state-service'
import { type Duration, parseDurationMs } from './duration.js'
import { InvalidArgumentError } from './errors.js'
import { type UnaryMethod, callUnary, withRetries, withRetriesUnderLease } from './grpc.js'
import { decodeJson, encodeJson } from './json.js'
import { attributes, inSpan } from './tracing.js'

/** A State Store entry. */
export interface StateEntryInfo<T = unknown> {
  key: string
  value: T
  /** Starts at 1 and grows by one with every write: the `expectedVersion` of compareAndSet. */
  version: number
  expiresAt: Date | undefined
  updatedAt: Date | undefined
}

/** Options of writes. */
export interface StateWriteOptions {
  /** Time to live: milliseconds or a string like "1h". Default: no expiry. */
  ttl?: Duration
  /** A lock's fencing token: the write is refused unless that lock is still held with it. */
  fencingToken?: number
}

/** A held lock. */
export interface StateLock {
  readonly key: string
  readonly lockId: string
  /** Grows with every acquisition: pass it with writes made under the lock. */
  readonly fencingToken: number
  /** When the lock expires unless extended. */
  readonly expiresAt: Date
  /** Extends the lock by `ttl` from now (default: the ttl it was taken with). */
  extend(ttl?: Duration): Promise<void>
  /** Releases the lock. Throws FailedPreconditionError if it is no longer held. */
  release(): Promise<void>
}

/** The lock was held by someone else for all of `waitMs`. */
export class LockUnavailableError extends Error {
  override name = 'LockUnavailableError'
}

/**
 * The State Store: durable key/value state in the namespace. From a client,
 * each call is one operation. Inside a job (`context.state`), each value
 * operation applies once per run: a retried or resumed run gets the recorded
 * result back (see RunStateScope).
 */
export interface StateStore {
  /** The value, or undefined when there is none (or it expired). */
  get<T = unknown>(key: string): Promise<T | undefined>
  /** The entry with its version and expiry, or undefined. */
  getEntry<T = unknown>(key: string): Promise<StateEntryInfo<T> | undefined>
  /** Creates or replaces the entry. Returns its new version. */
  set(key: string, value: unknown, options?: StateWriteOptions): Promise<{ version: number }>
  /** Deletes the entry. Returns whether there was a live one. */
  delete(key: string, options?: Pick<StateWriteOptions, 'fencingToken'>): Promise<boolean>
  /** Adds `delta` (default 1) to a numeric entry, atomically; an absent one counts as 0. Returns the new number. */
  increment(key: string, delta?: number, options?: Pick<StateWriteOptions, 'ttl'>): Promise<number>
  /** Writes the entry only if there is none: true for exactly one of any number of concurrent callers. */
  setIfAbsent(key: string, value: unknown, options?: Pick<StateWriteOptions, 'ttl'>): Promise<boolean>
  /** Writes the entry only if its version is `expectedVersion` (0: only if there is none). */
  compareAndSet(
    key: string,
    options: { expectedVersion: number; value: unknown } & StateWriteOptions,
  ): Promise<{ swapped: boolean; version: number }>
  /** A page of live entries whose keys start with `prefix`, in key order. Not recorded inside runs. */
  list<T = unknown>(options?: {
    prefix?: string
    limit?: number
    cursor?: string
  }): Promise<{ entries: Array<StateEntryInfo<T>>; nextCursor: string | undefined }>
  /**
   * Takes a lock for `ttl`, waiting up to `waitMs` (default 0) while someone
   * else holds it; throws LockUnavailableError if it stays held. Locks are
   * not recorded inside runs: a retried run takes the lock again.
   */
  lock(key: string, options: { ttl: Duration; waitMs?: number }): Promise<StateLock>
  /** Runs `fn` holding the lock, and releases it afterwards. */
  withLock<T>(key: string, options: { ttl: Duration; waitMs?: number }, fn: (lock: StateLock) => Promise<T>): Promise<T>
}

/** How value operations made inside a run are identified and replayed. */
export interface RunStateScope {
  runId: string
  leaseToken: string
  /** The attempt, for the operations' spans. */
  attempt: number
  /** Allocates the operation's id (step-id rules) and returns its recorded result, if it has one. */
  operation(name: string): { opId: string; record: { json: string | undefined } | undefined }
  /** Throws if the attempt was stopped. */
  throwIfAborted(): void
}

// Reads are safe to repeat, for this long. Operations inside runs, deduplicated by
// their id, are too, and retry for as long as the lease holds (withRetriesUnderLease).
const retryBudgetMs = 10_000

function ttlMs(ttl: Duration | undefined, what: string): number {
  if (ttl === undefined) return 0
  const ms = parseDurationMs(ttl, what)
  if (ms < 1) throw new InvalidArgumentError(`${what} must be at least 1 ms`)
  return ms
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key === '') throw new InvalidArgumentError('state key must be a non-empty string')
}

function valueJson(value: unknown, key: string): string {
  if (value === undefined) throw new InvalidArgumentError(`the value for state key "${key}" must not be undefined (delete the key instead)`)
  return encodeJson(value, `the value for state key "${key}"`)!
}

function toEntryInfo<T>(entry: StateEntryMessage): StateEntryInfo<T> {
  return {
    key: entry.key,
    value: decodeJson(entry.valueJson) as T,
    version: entry.version,
    expiresAt: entry.expiresAt,
    updatedAt: entry.updatedAt,
  }
}

/** A get's record: {"entry": {"value", "version", "expiresAt", "updatedAt"} or null}. */
function entryFromRecord<T>(key: string, json: string | undefined): StateEntryInfo<T> | undefined {
  const { entry } = JSON.parse(json ?? '{"entry":null}') as {
    entry: { value: T; version: number; expiresAt: string | null; updatedAt: string } | null
  }
  if (!entry) return undefined
  return {
    key,
    value: entry.value,
    version: entry.version,
    expiresAt: entry.expiresAt ? new Date(entry.expiresAt) : undefined,
    updatedAt: new Date(entry.updatedAt),
  }
}

/** @internal the State Store over gRPC; `run` makes value operations part of a run. */
export class StateClient implements StateStore {
  constructor(
    private readonly client: StateServiceClient,
    private readonly namespace: string,
    private readonly callTimeoutMs: number,
    private readonly run?: RunStateScope,
  ) {}

  async get<T = unknown>(key: string): Promise<T | undefined> {
    return (await this.getEntry<T>(key))?.value
  }

  async getEntry<T = unknown>(key: string): Promise<StateEntryInfo<T> | undefined> {
    checkKey(key)
    return this.operation(
      'get',
      key,
      (json) => entryFromRecord<T>(key, json),
      async (run) => {
        const { entry } = await this.call(this.client.get.bind(this.client), { namespace: this.namespace, key, run })
        return entry && toEntryInfo<T>(entry)
      },
      true,
    )
  }

  async set(key: string, value: unknown, options: StateWriteOptions = {}): Promise<{ version: number }> {
    checkKey(key)
    const request = {
      namespace: this.namespace,
      key,
      valueJson: valueJson(value, key),
      ttlMs: ttlMs(options.ttl, `state.set("${key}") ttl`),
      fencingToken: options.fencingToken ?? 0,
    }
    return this.operation(
      'set',
      key,
      (json) => JSON.parse(json!) as { version: number },
      async (run) => ({ version: (await this.call(this.client.set.bind(this.client), { ...request, run })).version }),
    )
  }

  async delete(key: string, options: Pick<StateWriteOptions, 'fencingToken'> = {}): Promise<boolean> {
    checkKey(key)
    return this.operation(
      'delete',
      key,
      (json) => (JSON.parse(json!) as { deleted: boolean }).deleted,
      async (run) =>
        (
          await this.call(this.client.delete.bind(this.client), {
            namespace: this.namespace,
            key,
            fencingToken: options.fencingToken ?? 0,
            run,
          })
        ).deleted,
    )
  }

  async increment(key: string, delta = 1, options: Pick<StateWriteOptions, 'ttl'> = {}): Promise<number> {
    checkKey(key)
    if (typeof delta !== 'number' || !Number.isFinite(delta)) {
      throw new InvalidArgumentError(`state.increment("${key}") delta must be a finite number, got ${JSON.stringify(delta)}`)
    }
    const request = { namespace: this.namespace, key, delta, ttlMs: ttlMs(options.ttl, `state.increment("${key}") ttl`) }
    return this.operation(
      'increment',
      key,
      (json) => (JSON.parse(json!) as { value: number }).value,
      async (run) => (await this.call(this.client.increment.bind(this.client), { ...request, run })).value,
    )
  }

  async setIfAbsent(key: string, value: unknown, options: Pick<StateWriteOptions, 'ttl'> = {}): Promise<boolean> {
    checkKey(key)
    const request = {
      namespace: this.namespace,
      key,
      valueJson: valueJson(value, key),
      ttlMs: ttlMs(options.ttl, `state.setIfAbsent("${key}") ttl`),
    }
    return this.operation(
      'setIfAbsent',
      key,
      (json) => (JSON.parse(json!) as { set: boolean }).set,
      async (run) => (await this.call(this.client.setIfAbsent.bind(this.client), { ...request, run })).set,
    )
  }

  async compareAndSet(
    key: string,
    options: { expectedVersion: number; value: unknown } & StateWriteOptions,
  ): Promise<{ swapped: boolean; version: number }> {
    checkKey(key)
    if (!Number.isInteger((options as typeof options | undefined)?.expectedVersion) || options.expectedVersion < 0) {
      throw new InvalidArgumentError(`state.compareAndSet("${key}") expectedVersion must be a non-negative integer`)
    }
    const request = {
      namespace: this.namespace,
      key,
      expectedVersion: options.expectedVersion,
      valueJson: valueJson(options.value, key),
      ttlMs: ttlMs(options.ttl, `state.compareAndSet("${key}") ttl`),
      fencingToken: options.fencingToken ?? 0,
    }
    return this.operation(
      'compareAndSet',
      key,
      (json) => JSON.parse(json!) as { swapped: boolean; version: number },
      async (run) => {
        const response = await this.call(this.client.compareAndSet.bind(this.client), { ...request, run })
        return { swapped: response.swapped, version: response.version }
      },
    )
  }

  async list<T = unknown>(
    options: { prefix?: string; limit?: number; cursor?: string } = {},
  ): Promise<{ entries: Array<StateEntryInfo<T>>; nextCursor: string | undefined }> {
    const request = { namespace: this.namespace, prefix: options.prefix ?? '', limit: options.limit ?? 0, cursor: options.cursor ?? '' }
    const response = await withRetries(() => this.call(this.client.list.bind(this.client), request), retryBudgetMs)
    return { entries: response.entries.map((entry) => toEntryInfo<T>(entry)), nextCursor: response.nextCursor || undefined }
  }

  async lock(key: string, options: { ttl: Duration; waitMs?: number }): Promise<StateLock> {
    checkKey(key)
    const lockTtlMs = ttlMs((options as typeof options | undefined)?.ttl, `state.lock("${key}") ttl`)
    const waitMs = options.waitMs ?? 0
    const response = await this.call(
      this.client.acquireLock.bind(this.client),
      { namespace: this.namespace, key, ttlMs: lockTtlMs, waitMs },
      waitMs,
    )
    if (!response.acquired || !response.lock) throw new LockUnavailableError(`lock "${key}" is held by someone else (waited ${waitMs} ms)`)
    return this.heldLock(response.lock, lockTtlMs)
  }

  async withLock<T>(key: string, options: { ttl: Duration; waitMs?: number }, fn: (lock: StateLock) => Promise<T>): Promise<T> {
    const lock = await this.lock(key, options)
    try {
      return await fn(lock)
    } finally {
      await lock.release()
    }
  }

  private heldLock(message: LockMessage, lockTtlMs: number): StateLock {
    let expiresAt = message.expiresAt ?? new Date(Date.now() + lockTtlMs)
    return {
      key: message.key,
      lockId: message.lockId,
      fencingToken: message.fencingToken,
      get expiresAt() {
        return expiresAt
      },
      extend: async (ttl?: Duration) => {
        const extendMs = ttl === undefined ? lockTtlMs : ttlMs(ttl, `lock "${message.key}" extend ttl`)
        const { lock } = await this.call(this.client.extendLock.bind(this.client), {
          namespace: this.namespace,
          key: message.key,
          lockId: message.lockId,
          ttlMs: extendMs,
        })
        expiresAt = lock?.expiresAt ?? expiresAt
      },
      release: async () => {
        await this.call(this.client.releaseLock.bind(this.client), {
          namespace: this.namespace,
          key: message.key,
          lockId: message.lockId,
        })
      },
    }
  }

  /**
   * Outside a run: the call. Inside one: the recorded result if the operation
   * already happened in this run, else the call under the operation's id
   * (repeatable: the server applies an id once).
   */
  private async operation<T>(
    name: string,
    key: string,
    fromRecord: (json: string | undefined) => T,
    call: (run: RunScope | undefined) => Promise<T>,
    isRead = false,
  ): Promise<T> {
    return inSpan(`state.${name}`, { attributes: { [attributes.stateKey]: key } }, async (span) => {
      const run = this.run
      if (!run) return isRead ? withRetries(() => call(undefined), retryBudgetMs) : call(undefined)
      const { opId, record } = run.operation(`state.${name}:${key}`)
      span.setAttributes({ [attributes.stepId]: opId, [attributes.attempt]: run.attempt })
      if (record) {
        span.setAttribute(attributes.outcome, 'memoized')
        return fromRecord(record.json)
      }
      run.throwIfAborted()
      const scope: RunScope = { runId: run.runId, leaseToken: run.leaseToken, opId }
      return withRetriesUnderLease(
        () => call(scope),
        () => run.throwIfAborted(),
      )
    })
  }

  private call<Request, Response>(method: UnaryMethod<Request, Response>, request: Request, extraMs = 0): Promise<Response> {
    return callUnary(method, request, this.callTimeoutMs + extraMs)
  }
}
