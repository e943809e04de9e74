import { Metadata, ServerInterceptingCall, type ServerInterceptor, status } from '@grpc/grpc-js'
import { type Principal, authorize } from '../core/access.js'
import type { Logger } from '../logger.js'
import type { ApiKeys } from '../operations/api-keys.js'
import { type AccessRule, accessRules } from './access-rules.js'
import { toRpcStatus } from './error-map.js'
import { attachPrincipal } from './principal.js'

/** The token of an `authorization: Bearer <token>` value (gRPC metadata or an HTTP header), if it is one. */
export function bearerTokenIn(authorization: unknown): string | undefined {
  if (typeof authorization !== 'string') return undefined
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization)
  return match?.[1]
}

/**
 * Throws PermissionDeniedError unless `principal` may send `message` by its
 * method's rule: the scope the message needs (none: any valid key) in the
 * namespace it acts in. The gRPC interceptor below and the Connect endpoint
 * (connect-unary.ts) both check with it.
 */
export function authorizeMessage(principal: Principal, rule: AccessRule, message: unknown): void {
  const scope = rule.scopeOf(message as never)
  if (scope) authorize(principal, scope, rule.namespaceOf(message as never))
}

/** The bearer token of `authorization: Bearer <token>`, if the call carries one. */
function bearerTokenOf(metadata: Metadata): string | undefined {
  return bearerTokenIn(metadata.get('authorization')[0])
}

/**
 * The one access check, in front of every call and every message of every
 * stream, by the table in access-rules.ts. The key is authenticated when the
 * call starts, and again (from this server's short-lived cache) before each
 * later message, so a stream opened with a key that is then revoked ends at
 * its next message. A refused call or message ends the call with
 * UNAUTHENTICATED or PERMISSION_DENIED before any handler sees it: nothing is
 * read or changed. Messages and the half-close go on in the order received,
 * each after the checks of those before it.
 */
export function createAccessInterceptor(deps: { keys: ApiKeys; logger: Logger }): ServerInterceptor {
  return (method, call) => {
    const rule = accessRules.get(method.path)
    if (!rule) return new ServerInterceptingCall(call)
    let token: string | undefined
    let principal: Principal | undefined
    let isRefused = false
    // Every event waits for the ones before it: the metadata's authentication first.
    let previous: Promise<void> = Promise.resolve()
    const inOrder = (step: () => Promise<void> | void) => {
      previous = previous.then(step).catch((error: unknown) => refuse(error))
    }
    const refuse = (error: unknown) => {
      if (isRefused) return
      isRefused = true
      const { code, message } = toRpcStatus(error, deps.logger)
      deps.logger.debug({ method: method.path, code, keyId: principal?.keyId }, 'call refused')
      call.sendStatus({ code: code === status.OK ? status.INTERNAL : code, details: message, metadata: new Metadata() })
    }
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, nextMetadata) =>
            inOrder(async () => {
              token = bearerTokenOf(metadata)
              principal = await deps.keys.authenticate(token)
              attachPrincipal(metadata, principal)
              nextMetadata(metadata)
            }),
          onReceiveMessage: (message: unknown, nextMessage) =>
            inOrder(async () => {
              if (isRefused) return
              // Later messages of a stream: the key must still be good.
              const current = principal ? await deps.keys.authenticate(token) : undefined
              if (!current) return
              authorizeMessage(current, rule, message)
              nextMessage(message)
            }),
          onReceiveHalfClose: (nextHalfClose) =>
            inOrder(() => {
              if (!isRefused) nextHalfClose()
            }),
        }),
    })
  }
}
