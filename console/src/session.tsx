import { ApiKeyScope } from '@stackshift/proto/admin-service'
import type { GetCallerResponse } from '@stackshift/proto/operator-service'
import type { DeepPartial } from '@stackshift/proto/run-service'
import { createContext, useContext } from 'react'
import { type Method, callUnary } from './api/connect-client.js'

/** Who is using the console and where: what every page needs to call the server. */
export interface Session {
  /** The caller, as GetCaller describes the key. */
  caller: GetCallerResponse
  /** The namespace the pages show: the key's own, or the one chosen when the key may act in every namespace. */
  namespace: string
  setNamespace: (namespace: string) => void
  /** Whether the key may cancel, rerun, replay and start bulk actions (the operate scope). */
  canOperate: boolean
  /** Whether the key may send events (the enqueue scope). */
  canEnqueue: boolean
  /** Calls a method with the session's key. */
  call: <Request, Response>(method: Method<Request, Response>, request: DeepPartial<Request>, signal?: AbortSignal) => Promise<Response>
  signOut: () => void
}

export const SessionContext = createContext<Session | undefined>(undefined)

export function useSession(): Session {
  const session = useContext(SessionContext)
  if (!session) throw new Error('useSession outside a signed-in console')
  return session
}

/*
 * The API key stays in this tab (sessionStorage) unless the user asks to be
 * remembered on this browser (localStorage). It travels only as the
 * Authorization header of calls to the same origin: no cookie, so no other
 * site can make the browser send it.
 */
const keyName = 'stackshift.apiKey'
const namespaceName = 'stackshift.namespace'

export function loadApiKey(): string | undefined {
  return sessionStorage.getItem(keyName) ?? localStorage.getItem(keyName) ?? undefined
}

export function saveApiKey(apiKey: string | undefined, remember: boolean): void {
  sessionStorage.removeItem(keyName)
  localStorage.removeItem(keyName)
  if (apiKey !== undefined) (remember ? localStorage : sessionStorage).setItem(keyName, apiKey)
}

export function loadNamespace(): string {
  return localStorage.getItem(namespaceName) ?? 'default'
}

export function saveNamespace(namespace: string): void {
  localStorage.setItem(namespaceName, namespace)
}

/** Builds a session for a caller GetCaller described. */
export function createSession(options: {
  caller: GetCallerResponse
  apiKey: string | undefined
  chosenNamespace: string
  setNamespace: (namespace: string) => void
  signOut: () => void
}): Session {
  const { caller, apiKey } = options
  const isEveryNamespace = caller.namespace === '*'
  return {
    caller,
    namespace: isEveryNamespace ? options.chosenNamespace : caller.namespace,
    setNamespace: options.setNamespace,
    canOperate: caller.scopes.includes(ApiKeyScope.API_KEY_SCOPE_OPERATE),
    canEnqueue: caller.scopes.includes(ApiKeyScope.API_KEY_SCOPE_ENQUEUE),
    call: (method, request, signal) => callUnary(method, request, { apiKey, signal }),
    signOut: options.signOut,
  }
}
