import type { Metadata } from '@grpc/grpc-js'
import { type Principal, anonymousPrincipal } from '../core/access.js'
import { UnauthenticatedError } from '../core/errors.js'

/*
 * The principal of a call travels from the access interceptor to the handler
 * with the call's request metadata: the interceptor passes the metadata
 * object on as it received it, so it can key the principal. Nothing a client
 * sends can set it.
 */
const principals = new WeakMap<Metadata, Principal>()

export function attachPrincipal(metadata: Metadata, principal: Principal): void {
  principals.set(metadata, principal)
}

/** The principal the access interceptor found for a call; undefined when none ran (auth off). */
export function principalOf(metadata: Metadata): Principal | undefined {
  return principals.get(metadata)
}

/**
 * Finds the principal of a call: the one the access interceptor attached,
 * or, when auth is off (no interceptor runs), the anonymous principal that
 * may do everything. With auth required, a call without one is refused.
 */
export function createPrincipalResolver(isAuthRequired: boolean): (metadata: Metadata) => Principal {
  return (metadata) => {
    const principal = principalOf(metadata)
    if (principal) return principal
    if (isAuthRequired) throw new UnauthenticatedError('this server requires an API key')
    return anonymousPrincipal
  }
}
