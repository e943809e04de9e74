import type { Metadata } from '@grpc/grpc-js'
import type { AdminServiceServer, ApiKey } from '@stackshift/proto/admin-service'
import type { Principal } from '../core/access.js'
import type { ApiKeyRecord } from '../db/queries/api-keys.js'
import type { Logger } from '../logger.js'
import type { ApiKeys } from '../operations/api-keys.js'
import { parseCreateApiKey, parseListApiKeys, parseRevokeApiKey, toScopeMessage } from './admin-requests.js'
import { unaryHandler } from './error-map.js'

function toApiKeyMessage(key: ApiKeyRecord): ApiKey {
  return {
    id: key.id,
    name: key.name,
    namespace: key.namespace,
    scopes: key.scopes.map(toScopeMessage),
    createdAt: key.createdAt,
    expiresAt: key.expiresAt,
    revokedAt: key.revokedAt,
  }
}

/** AdminService: validate, call the key store as the caller, convert. */
export function createAdminService(deps: {
  logger: Logger
  keys: ApiKeys
  principalOf: (metadata: Metadata) => Principal
}): AdminServiceServer {
  const { logger, keys, principalOf } = deps
  return {
    createApiKey: unaryHandler(logger, async (request, _signal, metadata) => {
      const caller = principalOf(metadata)
      const { key, secret } = await keys.create(caller, parseCreateApiKey(request))
      logger.info({ keyId: key.id, namespace: key.namespace, scopes: key.scopes, by: caller.keyId }, 'API key created')
      return { key: toApiKeyMessage(key), secret }
    }),
    listApiKeys: unaryHandler(logger, async (request, _signal, metadata) => ({
      keys: (await keys.list(principalOf(metadata), parseListApiKeys(request))).map(toApiKeyMessage),
    })),
    revokeApiKey: unaryHandler(logger, async (request, _signal, metadata) => {
      const caller = principalOf(metadata)
      const key = await keys.revoke(caller, parseRevokeApiKey(request))
      logger.info({ keyId: key.id, by: caller.keyId }, 'API key revoked')
      return { key: toApiKeyMessage(key) }
    }),
  }
}
