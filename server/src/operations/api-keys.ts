import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Knex } from 'knex'
import { type Principal, type Scope, everyNamespace, isNamespaceAllowed, scopes } from '../core/access.js'
import { NotFoundError, PermissionDeniedError, UnauthenticatedError } from '../core/errors.js'
import { type ApiKeyRecord, apiKeyFindUsable, apiKeyGet, apiKeyInsert, apiKeyList, apiKeyRevoke } from '../db/queries/api-keys.js'

/** A key to create, validated. */
export interface NewApiKey {
  namespace: string
  scopes: Scope[]
  name: string
  expiresAt: Date | undefined
}

/*
 * A key as given to clients: `ssk_<id>_<secret>`. The id (16 hex digits) is
 * public and finds the key's row; the secret (24 random bytes, base64url) is
 * checked against its stored SHA-256.
 */
const keyPattern = /^ssk_([0-9a-f]{16})_([A-Za-z0-9_-]{32})$/

/**
 * How long a key looked up stays trusted on this server without asking the
 * database again. Revocation also reaches every server at once by NOTIFY;
 * this bounds it when a notice is lost (a dropped LISTEN connection): every
 * server refuses a revoked key within this time.
 */
const trustMs = 2000
/** Keys remembered at most, found or not (unknown ids are remembered too, so guessing them costs the database nothing). */
const cacheMax = 10_000

interface CachedKey {
  /** Undefined: no usable key has this id. */
  key: (ApiKeyRecord & { secretSha256: Buffer }) | undefined
  fetchedAt: number
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

/** Whether two equally long digests are equal, in time that does not depend on where they differ. */
function isSameDigest(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b)
}

/**
 * API keys: authenticating the bearer of a key, and managing keys. Keys are
 * checked against the database at most every `trustMs` per key and server.
 */
export class ApiKeys {
  private readonly cache = new Map<string, CachedKey>()
  private readonly lookups = new Map<string, Promise<CachedKey>>()
  private readonly adminKeySha256: Buffer | undefined

  constructor(private readonly deps: { db: Knex; adminKey: string | undefined }) {
    this.adminKeySha256 = deps.adminKey === undefined ? undefined : sha256(deps.adminKey)
  }

  /** The principal a bearer token stands for; UnauthenticatedError when it stands for none. */
  async authenticate(token: string | undefined): Promise<Principal> {
    if (token === undefined || token === '') {
      throw new UnauthenticatedError('this server requires an API key: send it as "authorization: Bearer <key>" metadata')
    }
    if (this.adminKeySha256 && isSameDigest(sha256(token), this.adminKeySha256)) {
      return { keyId: 'admin-key', namespace: everyNamespace, scopes: new Set(scopes) }
    }
    const match = keyPattern.exec(token)
    if (!match) throw new UnauthenticatedError('the API key is not valid')
    const [, id, secret] = match as unknown as [string, string, string]
    const { key } = await this.lookUp(id)
    if (!key || !isSameDigest(sha256(secret), key.secretSha256)) throw new UnauthenticatedError('the API key is not valid')
    if (key.expiresAt && key.expiresAt.getTime() <= Date.now()) throw new UnauthenticatedError(`API key ${id} has expired`)
    return { keyId: key.id, namespace: key.namespace, scopes: new Set(key.scopes) }
  }

  /** A key was revoked (on any server): look it up again on its next use. */
  forget(keyId: string): void {
    this.cache.delete(keyId)
  }

  /** Revocation notices may have been missed: look every key up again. */
  forgetAll(): void {
    this.cache.clear()
  }

  async create(principal: Principal, request: NewApiKey): Promise<{ key: ApiKeyRecord; secret: string }> {
    this.checkManages(principal, request.namespace)
    const id = randomBytes(8).toString('hex')
    const secret = randomBytes(24).toString('base64url')
    const key = await apiKeyInsert(this.deps.db, { ...request, id, secretSha256: sha256(secret) })
    return { key, secret: `ssk_${id}_${secret}` }
  }

  /** Keys the principal manages, optionally of one namespace only. */
  async list(principal: Principal, request: { namespace: string | undefined; includeRevoked: boolean }): Promise<ApiKeyRecord[]> {
    const namespace = request.namespace ?? (principal.namespace === everyNamespace ? undefined : principal.namespace)
    if (namespace !== undefined) this.checkManages(principal, namespace)
    return apiKeyList(this.deps.db, { namespace, includeRevoked: request.includeRevoked })
  }

  async revoke(principal: Principal, id: string): Promise<ApiKeyRecord> {
    const existing = await apiKeyGet(this.deps.db, { id })
    if (!existing) throw new NotFoundError(`API key ${id} not found`)
    this.checkManages(principal, existing.namespace)
    const revoked = await apiKeyRevoke(this.deps.db, { id })
    this.forget(id)
    return revoked!
  }

  /** A key of one namespace manages that namespace's keys; a key of every namespace manages all. */
  private checkManages(principal: Principal, namespace: string): void {
    const isAllowed = namespace === everyNamespace ? principal.namespace === everyNamespace : isNamespaceAllowed(principal, namespace)
    if (!isAllowed) throw new PermissionDeniedError(`this API key is for namespace "${principal.namespace}", not "${namespace}"`)
  }

  private async lookUp(id: string): Promise<CachedKey> {
    const cached = this.cache.get(id)
    if (cached && Date.now() - cached.fetchedAt < trustMs) return cached
    let lookup = this.lookups.get(id)
    if (!lookup) {
      lookup = apiKeyFindUsable(this.deps.db, { id })
        .then((key) => {
          const entry = { key, fetchedAt: Date.now() }
          this.remember(id, entry)
          return entry
        })
        .finally(() => this.lookups.delete(id))
      this.lookups.set(id, lookup)
    }
    return lookup
  }

  private remember(id: string, entry: CachedKey): void {
    this.cache.delete(id)
    if (this.cache.size >= cacheMax) this.cache.delete(this.cache.keys().next().value!)
    this.cache.set(id, entry)
  }
}
