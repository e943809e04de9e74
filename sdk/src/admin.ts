import {
  type AdminServiceClient,
  type ApiKey,
  ApiKeyScope as ApiKeyScopeMessage,
  CreateApiKeyRequest,
  ListApiKeysRequest,
  RevokeApiKeyRequest,
} from '@stackshift/proto/admin-service'
import { callUnary } from './grpc.js'

/** What an API key may do (see the README's access control section). */
export type ApiKeyScope = 'enqueue' | 'read' | 'worker' | 'state' | 'operate' | 'admin'

/** An API key, without its secret. */
export interface ApiKeyInfo {
  /** Identifies the key; not a secret. */
  id: string
  name: string
  /** The namespace the key may act in, or `*` for every namespace. */
  namespace: string
  scopes: ApiKeyScope[]
  createdAt: Date
  expiresAt: Date | undefined
  revokedAt: Date | undefined
}

/** Options of `createApiKey`. */
export interface CreateApiKeyOptions {
  /** The namespace the key may act in, or `*` for every namespace. Default: the client's namespace. */
  namespace?: string
  /** What the key may do: at least one scope. */
  scopes: ApiKeyScope[]
  /** What the key is for, 1 to 200 characters. */
  name: string
  /** When the key stops working. Default: never. */
  expiresAt?: Date
}

const scopeMessages: ReadonlyMap<ApiKeyScope, ApiKeyScopeMessage> = new Map([
  ['enqueue', ApiKeyScopeMessage.API_KEY_SCOPE_ENQUEUE],
  ['read', ApiKeyScopeMessage.API_KEY_SCOPE_READ],
  ['worker', ApiKeyScopeMessage.API_KEY_SCOPE_WORKER],
  ['state', ApiKeyScopeMessage.API_KEY_SCOPE_STATE],
  ['operate', ApiKeyScopeMessage.API_KEY_SCOPE_OPERATE],
  ['admin', ApiKeyScopeMessage.API_KEY_SCOPE_ADMIN],
])

function toScopeMessage(scope: ApiKeyScope): ApiKeyScopeMessage {
  const message = scopeMessages.get(scope)
  if (message === undefined) throw new TypeError(`unknown API key scope "${scope}"; scopes: ${[...scopeMessages.keys()].join(', ')}`)
  return message
}

function fromApiKeyMessage(key: ApiKey): ApiKeyInfo {
  const scopes = [...scopeMessages].filter(([, message]) => key.scopes.includes(message)).map(([scope]) => scope)
  return {
    id: key.id,
    name: key.name,
    namespace: key.namespace,
    scopes,
    createdAt: key.createdAt ?? new Date(0),
    expiresAt: key.expiresAt,
    revokedAt: key.revokedAt,
  }
}

/**
 * Managing API keys (`stackshift.admin`). Every method needs a key with the
 * `admin` scope; a key of one namespace manages that namespace's keys only.
 */
export class AdminClient {
  /** @internal created by `new StackShift()` */
  constructor(
    private readonly client: AdminServiceClient,
    private readonly namespace: string,
    private readonly callTimeoutMs: number,
  ) {}

  /** Creates a key. The secret (`ssk_…`) is in this answer only: the server keeps a hash of it. */
  async createApiKey(options: CreateApiKeyOptions): Promise<ApiKeyInfo & { secret: string }> {
    const request = CreateApiKeyRequest.fromPartial({
      namespace: options.namespace ?? this.namespace,
      scopes: options.scopes.map(toScopeMessage),
      name: options.name,
      expiresAt: options.expiresAt,
    })
    const response = await callUnary(this.client.createApiKey.bind(this.client), request, this.callTimeoutMs)
    return { ...fromApiKeyMessage(response.key!), secret: response.secret }
  }

  /** Keys this client's key manages, newest first; `namespace` narrows them, `includeRevoked` adds revoked ones. */
  async listApiKeys(options: { namespace?: string; includeRevoked?: boolean } = {}): Promise<ApiKeyInfo[]> {
    const request = ListApiKeysRequest.fromPartial({ namespace: options.namespace ?? '', includeRevoked: options.includeRevoked ?? false })
    const response = await callUnary(this.client.listApiKeys.bind(this.client), request, this.callTimeoutMs)
    return response.keys.map(fromApiKeyMessage)
  }

  /** Revokes a key: every server refuses it within 5 seconds. Returns it, with `revokedAt`. */
  async revokeApiKey(id: string): Promise<ApiKeyInfo> {
    const response = await callUnary(
      this.client.revokeApiKey.bind(this.client),
      RevokeApiKeyRequest.fromPartial({ id }),
      this.callTimeoutMs,
    )
    return fromApiKeyMessage(response.key!)
  }
}
