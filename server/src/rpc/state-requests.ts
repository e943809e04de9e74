import { z } from 'zod'
import type { ServerConfig } from '../config.js'
import { InvalidArgumentError } from '../core/errors.js'
import { checkJsonText } from '../core/json-text.js'
import { limits } from '../core/limits.js'
import type { RunScope, StateTarget } from '../operations/state-store.js'
import type { RunScope as RunScopeMessage } from '@stackshift/proto/state-service'
import { nameSchema, namespaceSchema, parse, textSchema, uuidSchema } from './validation.js'

/* Validation of StateService requests; see requests.ts for the conventions. */

type Limits = Pick<ServerConfig, 'maxPayloadBytes'>

const keySchema = nameSchema(limits.stateKeyMaxLength)

const ttlMsSchema = z
  .number()
  .int()
  .min(0, 'must not be negative')
  .max(limits.delayMaxMs, `must be at most ${limits.delayMaxMs} (ten years)`)

const fencingTokenSchema = z.number().int().min(0, 'must not be negative')

const runScopeSchema = z.object({ runId: uuidSchema, leaseToken: uuidSchema, opId: nameSchema(limits.stepIdMaxLength) })

const targetSchema = z.object({ namespace: namespaceSchema, key: keySchema })

/** The namespace and key of a request, and its run scope if it has one. */
function parseTarget(request: { namespace: string; key: string; run?: RunScopeMessage | undefined }): StateTarget {
  const { namespace, key } = parse(targetSchema, request, '')
  const run: RunScope | undefined = request.run ? parse(runScopeSchema, request.run, 'run') : undefined
  return { namespace, key, run }
}

function parseValue(valueJson: string, config: Limits): string {
  if (valueJson === '') throw new InvalidArgumentError('value_json', 'is required')
  return checkJsonText('value_json', valueJson, config.maxPayloadBytes)
}

export function parseGetState(request: { namespace: string; key: string; run: RunScopeMessage | undefined }): StateTarget {
  return parseTarget(request)
}

const writeSchema = z.object({ ttlMs: ttlMsSchema, fencingToken: fencingTokenSchema })

export function parseSetState(
  request: { namespace: string; key: string; valueJson: string; ttlMs: number; fencingToken: number; run: RunScopeMessage | undefined },
  config: Limits,
): { target: StateTarget; valueJson: string; ttlMs: number; fencingToken: number } {
  const target = parseTarget(request)
  const { ttlMs, fencingToken } = parse(writeSchema, request, '')
  return { target, valueJson: parseValue(request.valueJson, config), ttlMs, fencingToken }
}

export function parseDeleteState(request: { namespace: string; key: string; fencingToken: number; run: RunScopeMessage | undefined }): {
  target: StateTarget
  fencingToken: number
} {
  const target = parseTarget(request)
  return { target, fencingToken: parse(fencingTokenSchema, request.fencingToken, 'fencing_token') }
}

const incrementSchema = z.object({
  delta: z.number().refine(Number.isFinite, 'must be a finite number'),
  ttlMs: ttlMsSchema,
})

export function parseIncrementState(request: {
  namespace: string
  key: string
  delta: number
  ttlMs: number
  run: RunScopeMessage | undefined
}): { target: StateTarget; delta: number; ttlMs: number } {
  const target = parseTarget(request)
  return { target, ...parse(incrementSchema, request, '') }
}

export function parseSetIfAbsentState(
  request: { namespace: string; key: string; valueJson: string; ttlMs: number; run: RunScopeMessage | undefined },
  config: Limits,
): { target: StateTarget; valueJson: string; ttlMs: number } {
  const target = parseTarget(request)
  return { target, valueJson: parseValue(request.valueJson, config), ttlMs: parse(ttlMsSchema, request.ttlMs, 'ttl_ms') }
}

const compareAndSetSchema = writeSchema.extend({ expectedVersion: z.number().int().min(0, 'must not be negative') })

export function parseCompareAndSetState(
  request: {
    namespace: string
    key: string
    expectedVersion: number
    valueJson: string
    ttlMs: number
    fencingToken: number
    run: RunScopeMessage | undefined
  },
  config: Limits,
): { target: StateTarget; expectedVersion: number; valueJson: string; ttlMs: number; fencingToken: number } {
  const target = parseTarget(request)
  const { expectedVersion, ttlMs, fencingToken } = parse(compareAndSetSchema, request, '')
  return { target, expectedVersion, valueJson: parseValue(request.valueJson, config), ttlMs, fencingToken }
}

const listSchema = z.object({
  namespace: namespaceSchema,
  prefix: textSchema(limits.stateKeyMaxLength),
  limit: z.number().int().max(limits.listStateLimitMax, `must be at most ${limits.listStateLimitMax}`),
  cursor: z.string().max(4 * limits.stateKeyMaxLength, 'is not a cursor returned by List'),
})

/** A List cursor is the last key of a page, base64url-encoded. */
export function encodeStateCursor(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url')
}

export function parseListState(request: { namespace: string; prefix: string; limit: number; cursor: string }): {
  namespace: string
  prefix: string
  afterKey: string | undefined
  limit: number
} {
  const parsed = parse(listSchema, request, '')
  const afterKey = parsed.cursor ? Buffer.from(parsed.cursor, 'base64url').toString('utf8') : undefined
  // A cursor holds a key that exists, so a valid one.
  if (afterKey !== undefined && (encodeStateCursor(afterKey) !== parsed.cursor || !keySchema.safeParse(afterKey).success)) {
    throw new InvalidArgumentError('cursor', 'is not a cursor returned by List')
  }
  return { namespace: parsed.namespace, prefix: parsed.prefix, afterKey, limit: parsed.limit || limits.listStateLimitDefault }
}

const lockTtlMsSchema = z
  .number()
  .int()
  .min(limits.lockTtlMinMs, `must be at least ${limits.lockTtlMinMs}`)
  .max(limits.lockTtlMaxMs, `must be at most ${limits.lockTtlMaxMs}`)

const acquireLockSchema = targetSchema.extend({
  ttlMs: lockTtlMsSchema,
  waitMs: z.number().int().min(0, 'must not be negative').max(limits.lockWaitMaxMs, `must be at most ${limits.lockWaitMaxMs}`),
})

export function parseAcquireLock(request: { namespace: string; key: string; ttlMs: number; waitMs: number }): {
  namespace: string
  key: string
  ttlMs: number
  waitMs: number
} {
  return parse(acquireLockSchema, request, '')
}

const extendLockSchema = targetSchema.extend({ lockId: uuidSchema, ttlMs: lockTtlMsSchema })

export function parseExtendLock(request: { namespace: string; key: string; lockId: string; ttlMs: number }): {
  namespace: string
  key: string
  lockId: string
  ttlMs: number
} {
  return parse(extendLockSchema, request, '')
}

const releaseLockSchema = targetSchema.extend({ lockId: uuidSchema })

export function parseReleaseLock(request: { namespace: string; key: string; lockId: string }): {
  namespace: string
  key: string
  lockId: string
} {
  return parse(releaseLockSchema, request, '')
}
