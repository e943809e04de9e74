import type { DeepPartial, MessageFns } from '@stackshift/proto/run-service'

/**
 * A unary method of one of the protocol's services, as the console calls it:
 * its path and the generated message functions of its request and response.
 */
export interface Method<Request, Response> {
  /** `/stackshift.jobs.v1.RunService/ListRuns`, from the generated service definition. */
  path: string
  request: MessageFns<Request>
  response: MessageFns<Response>
}

/** An error the server answered with: Connect's code (`permission_denied`) and message. */
export class ConnectError extends Error {
  override name = 'ConnectError'

  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}

/**
 * Calls a method through the server's Connect endpoint (the unary form of
 * the Connect protocol, with JSON): the request goes out in the protocol's
 * JSON mapping, written by the generated `toJSON`, and the response is read
 * back by the generated `fromJSON`. An error answer throws a ConnectError.
 */
export async function callUnary<Request, Response>(
  method: Method<Request, Response>,
  request: DeepPartial<Request>,
  options: { apiKey: string | undefined; signal?: AbortSignal | undefined },
): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'connect-protocol-version': '1' }
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`
  let response: globalThis.Response
  try {
    response = await fetch(method.path, {
      method: 'POST',
      headers,
      body: JSON.stringify(method.request.toJSON(method.request.fromPartial(request))),
      signal: options.signal ?? null,
    })
  } catch (error) {
    if (error instanceof DOMException && error.name === 'AbortError') throw error
    throw new ConnectError('unavailable', 'the server cannot be reached')
  }
  const body: unknown = (response.headers.get('content-type') ?? '').startsWith('application/json') ? await response.json() : undefined
  if (!response.ok) {
    const error = (body ?? {}) as { code?: unknown; message?: unknown }
    throw new ConnectError(
      typeof error.code === 'string' ? error.code : 'unknown',
      typeof error.message === 'string' ? error.message : `HTTP ${response.status}`,
    )
  }
  return method.response.fromJSON(body)
}
