import { PermissionDeniedError } from './errors.js'

/**
 * Access control: who a call comes from (a principal) and what it may do.
 * Pure: no I/O. Keys are looked up in operations/api-keys.ts; the check in
 * front of every call is rpc/access-interceptor.ts, by the table in
 * rpc/access-rules.ts.
 */

/** What a key may do; DESIGN.md and admin_service.proto say which calls need which. */
export type Scope = 'enqueue' | 'read' | 'worker' | 'state' | 'operate' | 'admin'

export const scopes: readonly Scope[] = ['enqueue', 'read', 'worker', 'state', 'operate', 'admin']

/** The namespace of a key that may act in every namespace. */
export const everyNamespace = '*'

/** Who a call comes from. */
export interface Principal {
  /** The key's id; `admin-key` for STACKSHIFT_ADMIN_KEY, `anonymous` when auth is off. */
  keyId: string
  /** The namespace it may act in, or `*`. */
  namespace: string
  scopes: ReadonlySet<Scope>
}

/** Every call is allowed: the principal of a server whose auth is off. */
export const anonymousPrincipal: Principal = { keyId: 'anonymous', namespace: everyNamespace, scopes: new Set(scopes) }

/** Whether `principal` may act in `namespace`. */
export function isNamespaceAllowed(principal: Principal, namespace: string): boolean {
  return principal.namespace === everyNamespace || principal.namespace === namespace
}

/**
 * Throws PermissionDeniedError unless `principal` holds `scope` and may act
 * in `namespace` (undefined: the call names no namespace).
 */
export function authorize(principal: Principal, scope: Scope, namespace: string | undefined): void {
  if (!principal.scopes.has(scope)) {
    throw new PermissionDeniedError(`this API key lacks the "${scope}" scope that this call needs`)
  }
  if (namespace !== undefined && !isNamespaceAllowed(principal, namespace)) {
    throw new PermissionDeniedError(`this API key is for namespace "${principal.namespace}", not "${namespace}"`)
  }
}

/** Whether a listening address is reachable only from this machine. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host)
}

/**
 * Whether calls need a key: STACKSHIFT_AUTH as set, `auto` resolving to off
 * on loopback and required beyond it. So a server that listens beyond
 * loopback without keys is one where `off` was asked for by name.
 */
export function resolveAuthMode(setting: 'auto' | 'required' | 'off', host: string): 'required' | 'off' {
  if (setting === 'auto') return isLoopbackHost(host) ? 'off' : 'required'
  return setting
}
