import { ApiKeyScope, type CreateApiKeyRequest, type ListApiKeysRequest, type RevokeApiKeyRequest } from '@stackshift/proto/admin-service'
import { z } from 'zod'
import { type Scope, everyNamespace } from '../core/access.js'
import { InvalidArgumentError } from '../core/errors.js'
import type { NewApiKey } from '../operations/api-keys.js'
import { instantSchema, nameSchema, namespaceSchema, parse } from './validation.js'

/** AdminService requests as validated domain values (see validation.ts on how rejections name fields). */

const scopeByMessage = new Map<ApiKeyScope, Scope>([
  [ApiKeyScope.API_KEY_SCOPE_ENQUEUE, 'enqueue'],
  [ApiKeyScope.API_KEY_SCOPE_READ, 'read'],
  [ApiKeyScope.API_KEY_SCOPE_WORKER, 'worker'],
  [ApiKeyScope.API_KEY_SCOPE_STATE, 'state'],
  [ApiKeyScope.API_KEY_SCOPE_OPERATE, 'operate'],
  [ApiKeyScope.API_KEY_SCOPE_ADMIN, 'admin'],
])

/** The scope's protocol value. */
export function toScopeMessage(scope: Scope): ApiKeyScope {
  for (const [message, value] of scopeByMessage) if (value === scope) return message
  return ApiKeyScope.API_KEY_SCOPE_UNSPECIFIED
}

/** A namespace, or "*" for every namespace. */
const keyNamespaceSchema = z.union([z.literal(everyNamespace), namespaceSchema])

const createSchema = z.object({
  namespace: keyNamespaceSchema,
  name: nameSchema(200),
  expiresAt: instantSchema.optional(),
})

export function parseCreateApiKey(request: CreateApiKeyRequest): NewApiKey {
  const parsed = parse(createSchema, request, '')
  if (request.scopes.length === 0) throw new InvalidArgumentError('scopes', 'must name at least one scope')
  const scopes = request.scopes.map((scope, index) => {
    const value = scopeByMessage.get(scope)
    if (!value) throw new InvalidArgumentError(`scopes[${index}]`, 'must be a scope other than API_KEY_SCOPE_UNSPECIFIED')
    return value
  })
  if (parsed.expiresAt && parsed.expiresAt.getTime() <= Date.now()) throw new InvalidArgumentError('expires_at', 'must be in the future')
  return { namespace: parsed.namespace, name: parsed.name, scopes: [...new Set(scopes)], expiresAt: parsed.expiresAt }
}

const listSchema = z.object({ namespace: z.union([z.literal(''), keyNamespaceSchema]), includeRevoked: z.boolean() })

export function parseListApiKeys(request: ListApiKeysRequest): { namespace: string | undefined; includeRevoked: boolean } {
  const parsed = parse(listSchema, request, '')
  return { namespace: request.namespace === '' ? undefined : parsed.namespace, includeRevoked: parsed.includeRevoked }
}

const revokeSchema = z.object({ id: z.string().regex(/^[0-9a-f]{16}$/, 'must be a key id (16 hexadecimal digits)') })

export function parseRevokeApiKey(request: RevokeApiKeyRequest): string {
  return parse(revokeSchema, request, '').id
}
