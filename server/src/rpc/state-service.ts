import type { Lock, StateEntry as StateEntryMessage, StateServiceServer } from '@stackshift/proto/state-service'
import type { ServerConfig } from '../config.js'
import type { LockRecord, StateEntry } from '../core/run.js'
import type { Logger } from '../logger.js'
import type { StateStore } from '../operations/state-store.js'
import { unaryHandler } from './error-map.js'
import {
  encodeStateCursor,
  parseAcquireLock,
  parseCompareAndSetState,
  parseDeleteState,
  parseExtendLock,
  parseGetState,
  parseIncrementState,
  parseListState,
  parseReleaseLock,
  parseSetIfAbsentState,
  parseSetState,
} from './state-requests.js'

function toEntryMessage(entry: StateEntry): StateEntryMessage {
  return { key: entry.key, valueJson: entry.valueJson, version: entry.version, expiresAt: entry.expiresAt, updatedAt: entry.updatedAt }
}

function toLockMessage(lock: LockRecord): Lock {
  return { key: lock.key, lockId: lock.lockId, fencingToken: lock.fencingToken, expiresAt: lock.expiresAt }
}

/** StateService: validate, call the State Store, convert. */
export function createStateService(deps: { config: ServerConfig; logger: Logger; store: StateStore }): StateServiceServer {
  const { config, logger, store } = deps
  return {
    get: unaryHandler(logger, async (request) => {
      const { entry } = await store.get(parseGetState(request))
      return { entry: entry && toEntryMessage(entry) }
    }),
    set: unaryHandler(logger, async (request) => {
      const { target, ...params } = parseSetState(request, config)
      return store.set(target, params)
    }),
    delete: unaryHandler(logger, async (request) => {
      const { target, ...params } = parseDeleteState(request)
      return store.delete(target, params)
    }),
    increment: unaryHandler(logger, async (request) => {
      const { target, ...params } = parseIncrementState(request)
      return store.increment(target, params)
    }),
    setIfAbsent: unaryHandler(logger, async (request) => {
      const { target, ...params } = parseSetIfAbsentState(request, config)
      return store.setIfAbsent(target, params)
    }),
    compareAndSet: unaryHandler(logger, async (request) => {
      const { target, ...params } = parseCompareAndSetState(request, config)
      return store.compareAndSet(target, params)
    }),
    list: unaryHandler(logger, async (request) => {
      const { entries, lastKey } = await store.list(parseListState(request))
      return { entries: entries.map(toEntryMessage), nextCursor: lastKey === undefined ? '' : encodeStateCursor(lastKey) }
    }),
    acquireLock: unaryHandler(logger, async (request, signal) => {
      const lock = await store.acquireLock(parseAcquireLock(request), signal)
      return { acquired: lock !== undefined, lock: lock && toLockMessage(lock) }
    }),
    extendLock: unaryHandler(logger, async (request) => ({ lock: toLockMessage(await store.extendLock(parseExtendLock(request))) })),
    releaseLock: unaryHandler(logger, async (request) => {
      await store.releaseLock(parseReleaseLock(request))
      return {}
    }),
  }
}
