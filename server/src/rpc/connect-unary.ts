import { EventEmitter } from 'node:events'
import { type DescMessage, type JsonValue, createFileRegistry, fromBinary, fromJson, toBinary, toJson } from '@bufbuild/protobuf'
import { type Deadline, Metadata, type MethodDefinition, type ServerUnaryCall, type handleUnaryCall, status } from '@grpc/grpc-js'
import { loadDescriptorSet } from '@stackshift/proto/descriptor-set'
import { InvalidArgumentError } from '../core/errors.js'
import type { Logger } from '../logger.js'
import type { ApiKeys } from '../operations/api-keys.js'
import { authorizeMessage, bearerTokenIn } from './access-interceptor.js'
import { accessRules } from './access-rules.js'
import { withDecodeErrors } from './decode-errors.js'
import { toRpcStatus } from './error-map.js'
import { type StackShiftServices, stackShiftServiceDefinitions } from './grpc-server.js'
import { attachPrincipal } from './principal.js'

/*
 * The unary form of the Connect protocol (connectrpc.com/docs/protocol):
 * `POST /<package.Service>/<Method>` with the request as JSON
 * (`application/json`) or protobuf (`application/proto`), answered with the
 * response in the same encoding, or an error as `{"code", "message"}` JSON
 * with the HTTP status the protocol gives the code. It lets a browser call
 * the services: the web console uses it.
 *
 * Nothing here is written per method. Every unary method of every service in
 * StackShiftServices is served, from the generated definitions, by the very
 * handler object the gRPC server uses, behind the same access rules and the
 * same decode checks (decode-errors.ts): JSON is read strictly with the
 * protocol's descriptor set (an unknown field or a wrong type is
 * invalid_argument naming the field), turned into protobuf bytes, and
 * decoded by the method's own deserializer, so a handler sees exactly what a
 * gRPC call would have given it. Streaming methods are not offered: the
 * answer is `unimplemented`.
 */

/** A unary call received over HTTP, its body already read. */
export interface ConnectRequest {
  /** The URL path, `/stackshift.jobs.v1.RunService/GetRun`. */
  path: string
  /** The Content-Type header. */
  contentType: string | undefined
  /** The Content-Encoding header (compression). */
  contentEncoding: string | undefined
  /** The Connect-Protocol-Version header. */
  protocolVersion: string | undefined
  /** The Connect-Timeout-Ms header. */
  timeoutMs: string | undefined
  /** The Authorization header. */
  authorization: string | undefined
  body: Buffer
  /** The client's address, for logs. */
  peer: string
  /** The Host header. */
  host: string
  /** Aborted when the client goes away before it is answered. */
  signal: AbortSignal
}

/** What to send back. */
export interface ConnectResponse {
  httpStatus: number
  contentType: string
  body: Buffer
  /** Extra headers (Accept-Post for a content type not understood). */
  headers?: Record<string, string>
}

/** The Connect endpoint: whether a path is one of its methods, and answering a call. */
export interface ConnectUnary {
  /** Whether `path` names a method of a StackShift service (unary or not). */
  isMethodPath(path: string): boolean
  handle(request: ConnectRequest): Promise<ConnectResponse>
}

/** Connect's name for each gRPC status code, and the HTTP status it is sent with (the protocol's table). */
const connectCodes: ReadonlyMap<status, { name: string; httpStatus: number }> = new Map([
  [status.CANCELLED, { name: 'canceled', httpStatus: 499 }],
  [status.UNKNOWN, { name: 'unknown', httpStatus: 500 }],
  [status.INVALID_ARGUMENT, { name: 'invalid_argument', httpStatus: 400 }],
  [status.DEADLINE_EXCEEDED, { name: 'deadline_exceeded', httpStatus: 504 }],
  [status.NOT_FOUND, { name: 'not_found', httpStatus: 404 }],
  [status.ALREADY_EXISTS, { name: 'already_exists', httpStatus: 409 }],
  [status.PERMISSION_DENIED, { name: 'permission_denied', httpStatus: 403 }],
  [status.RESOURCE_EXHAUSTED, { name: 'resource_exhausted', httpStatus: 429 }],
  [status.FAILED_PRECONDITION, { name: 'failed_precondition', httpStatus: 400 }],
  [status.ABORTED, { name: 'aborted', httpStatus: 409 }],
  [status.OUT_OF_RANGE, { name: 'out_of_range', httpStatus: 400 }],
  [status.UNIMPLEMENTED, { name: 'unimplemented', httpStatus: 501 }],
  [status.INTERNAL, { name: 'internal', httpStatus: 500 }],
  [status.UNAVAILABLE, { name: 'unavailable', httpStatus: 503 }],
  [status.DATA_LOSS, { name: 'data_loss', httpStatus: 500 }],
  [status.UNAUTHENTICATED, { name: 'unauthenticated', httpStatus: 401 }],
])

/** A Connect error response: `{"code": "invalid_argument", "message": "..."}`. */
export function connectError(code: status, message: string): ConnectResponse {
  const { name, httpStatus } = connectCodes.get(code) ?? connectCodes.get(status.INTERNAL)!
  return { httpStatus, contentType: 'application/json', body: Buffer.from(JSON.stringify({ code: name, message })) }
}

/** The encodings the endpoint reads and writes; the response uses the request's. */
type Codec = 'json' | 'proto'

/** The codec a Content-Type names (parameters such as `charset=utf-8` aside), if it is one of the unary ones. */
function codecOf(contentType: string | undefined): Codec | undefined {
  const [mediaType = ''] = (contentType ?? '').split(';')
  const type = mediaType.trim().toLowerCase()
  if (type === 'application/json') return 'json'
  if (type === 'application/proto') return 'proto'
  return undefined
}

/** One method as served here. */
interface Route {
  /** Undefined for a streaming method: refused. */
  method:
    | {
        definition: MethodDefinition<unknown, unknown>
        handler: handleUnaryCall<unknown, unknown>
        input: DescMessage
        output: DescMessage
      }
    | undefined
}

/** Connect-Timeout-Ms: at most 10 digits, by the protocol. */
const timeoutPattern = /^\d{1,10}$/

/**
 * The Connect endpoint over `services`. With `keys`, calls need an API key
 * (auth required) and are checked by access-rules.ts as gRPC calls are;
 * without, every call is allowed (auth off), as on the gRPC server.
 */
export function createConnectUnary(deps: { services: StackShiftServices; keys: ApiKeys | undefined; logger: Logger }): ConnectUnary {
  const { keys, logger } = deps
  const routes = buildRoutes(deps.services)
  return {
    isMethodPath: (path) => routes.has(path),
    async handle(request) {
      const route = routes.get(request.path)
      if (!route) return connectError(status.UNIMPLEMENTED, `no method ${request.path}`)
      if (!route.method) {
        return connectError(
          status.UNIMPLEMENTED,
          `${request.path} is a streaming method; this endpoint serves unary methods only: call it over gRPC`,
        )
      }
      const codec = codecOf(request.contentType)
      if (!codec) {
        return {
          httpStatus: 415,
          contentType: 'text/plain',
          body: Buffer.from(`unsupported content type ${request.contentType ?? '(none)'}: send application/json or application/proto\n`),
          headers: { 'accept-post': 'application/json, application/proto' },
        }
      }
      if (request.contentEncoding !== undefined && request.contentEncoding.toLowerCase() !== 'identity') {
        return connectError(
          status.UNIMPLEMENTED,
          `content encoding ${request.contentEncoding} is not supported; send the request uncompressed`,
        )
      }
      if (request.protocolVersion !== undefined && request.protocolVersion !== '1') {
        return connectError(status.INVALID_ARGUMENT, `connect-protocol-version must be 1, not ${request.protocolVersion}`)
      }
      if (request.timeoutMs !== undefined && !timeoutPattern.test(request.timeoutMs)) {
        return connectError(status.INVALID_ARGUMENT, 'connect-timeout-ms must be a positive integer of at most 10 digits')
      }
      try {
        return await call(route.method, codec, request)
      } catch (error) {
        if (error instanceof ConnectStatus) return connectError(error.code, error.message)
        const { code, message } = toRpcStatus(error, logger)
        return connectError(code, message)
      }
    },
  }

  async function call(method: NonNullable<Route['method']>, codec: Codec, request: ConnectRequest): Promise<ConnectResponse> {
    const metadata = new Metadata()
    // Authenticated before the body is read, as the gRPC interceptor does with the metadata.
    const principal = keys && accessRules.has(request.path) ? await keys.authenticate(bearerTokenIn(request.authorization)) : undefined
    const message = method.definition.requestDeserialize(toProtobufBytes(method.input, codec, request.body))
    const rule = accessRules.get(request.path)
    if (principal && rule) {
      authorizeMessage(principal, rule, message)
      attachPrincipal(metadata, principal)
    }
    const response = await invoke(method.handler, new ConnectUnaryCall(message, metadata, request), request)
    const bytes = method.definition.responseSerialize(response)
    if (codec === 'proto') return { httpStatus: 200, contentType: 'application/proto', body: bytes }
    const json = toJson(method.output, fromBinary(method.output, bytes))
    return { httpStatus: 200, contentType: 'application/json', body: Buffer.from(JSON.stringify(json)) }
  }
}

/** The request as protobuf bytes; JSON is read strictly, by the protocol's JSON mapping. */
function toProtobufBytes(input: DescMessage, codec: Codec, body: Buffer): Buffer {
  if (codec === 'proto') return body
  let json: unknown
  try {
    json = JSON.parse(body.toString('utf8'))
  } catch (error) {
    throw new InvalidArgumentError('request', `is not JSON (${error instanceof Error ? error.message : String(error)})`)
  }
  try {
    return Buffer.from(toBinary(input, fromJson(input, json as JsonValue)))
  } catch (error) {
    throw explainJsonError(input, json, '', error)
  }
}

/**
 * Names the field a JSON request went wrong at, by its path as the client
 * wrote it (`run.priority`): @bufbuild/protobuf's error names the type, and
 * not always the field (an enum or a timestamp it could not read). Each
 * field is read again on its own until the one that fails is found, then
 * the search goes into it if it is a message. Only failed requests pay for this.
 */
function explainJsonError(type: DescMessage, json: unknown, path: string, error: unknown): InvalidArgumentError {
  const here = path || 'request'
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return new InvalidArgumentError(here, `must be a JSON object (${type.typeName})`)
  }
  for (const [key, value] of Object.entries(json) as Array<[string, JsonValue]>) {
    const fieldPath = path ? `${path}.${key}` : key
    const field = type.fields.find((candidate) => candidate.jsonName === key || candidate.name === key)
    if (!field) return new InvalidArgumentError(fieldPath, `is not a field of ${type.typeName}`)
    try {
      fromJson(type, { [key]: value })
      continue
    } catch (fieldError) {
      const isPlainMessage = field.fieldKind === 'message' && !field.message.file.name.startsWith('google/protobuf/')
      if (isPlainMessage && typeof value === 'object' && value !== null)
        return explainJsonError(field.message, value, fieldPath, fieldError)
      if (field.fieldKind === 'list' && field.listKind === 'message' && Array.isArray(value)) {
        for (const [index, item] of value.entries()) {
          try {
            fromJson(field.message, item)
          } catch (itemError) {
            return explainJsonError(field.message, item, `${fieldPath}[${index}]`, itemError)
          }
        }
      }
      return new InvalidArgumentError(fieldPath, describeJsonError(fieldError))
    }
  }
  return new InvalidArgumentError(here, describeJsonError(error))
}

/** @bufbuild/protobuf's reason, after its `cannot decode ... from JSON:` preamble, and the type it expected. */
function describeJsonError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  const match = /^cannot decode (field|message|enum) (\S+) from JSON: (.*)$/s.exec(message)
  if (!match) return message
  const [, kind, name, reason] = match as unknown as [string, string, string, string]
  return kind === 'field' ? reason : `is not a valid ${name} (${reason})`
}

/** Calls a grpc-js unary handler and settles with its answer; a status becomes a thrown ConnectStatus. */
function invoke(handler: handleUnaryCall<unknown, unknown>, call: ConnectUnaryCall, request: ConnectRequest): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let isSettled = false
    const settle = (outcome: () => void) => {
      if (isSettled) return
      isSettled = true
      clearTimeout(timer)
      request.signal.removeEventListener('abort', onAbort)
      outcome()
    }
    const onAbort = () => {
      call.cancel()
      settle(() => reject(new ConnectStatus(status.CANCELLED, 'the client went away')))
    }
    request.signal.addEventListener('abort', onAbort)
    const timer =
      request.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            call.cancel()
            settle(() =>
              reject(new ConnectStatus(status.DEADLINE_EXCEEDED, `no answer within connect-timeout-ms (${request.timeoutMs} ms)`)),
            )
          }, Number(request.timeoutMs))
    handler(call, (error, response) => {
      if (!error) settle(() => resolve(response))
      else
        settle(() =>
          reject(
            new ConnectStatus(error.code ?? status.INTERNAL, error.details ?? ('message' in error ? error.message : 'internal error')),
          ),
        )
    })
  })
}

/** A status the call ended with: the handler's (already through the error map), or a timeout or cancellation here. */
class ConnectStatus extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message)
  }
}

/**
 * What a grpc-js unary handler is given as its call, for a call that came
 * over HTTP: the decoded request, the metadata the principal is attached to,
 * and 'cancelled' when the client goes away or its timeout passes.
 */
class ConnectUnaryCall extends EventEmitter implements ServerUnaryCall<unknown, unknown> {
  cancelled = false

  constructor(
    readonly request: unknown,
    readonly metadata: Metadata,
    private readonly http: ConnectRequest,
  ) {
    super()
  }

  cancel(): void {
    if (this.cancelled) return
    this.cancelled = true
    this.emit('cancelled')
  }

  getPeer(): string {
    return this.http.peer
  }

  sendMetadata(): void {
    // HTTP response headers go out with the response; handlers send no metadata of their own.
  }

  getDeadline(): Deadline {
    return this.http.timeoutMs === undefined ? Infinity : Date.now() + Number(this.http.timeoutMs)
  }

  getPath(): string {
    return this.http.path
  }

  getHost(): string {
    return this.http.host
  }

  getAuthContext(): ReturnType<ServerUnaryCall<unknown, unknown>['getAuthContext']> {
    return {}
  }

  getMetricsRecorder(): never {
    throw new Error('per-request load reports are a gRPC feature; a Connect call has none')
  }
}

/** Every method of every service, by path, with the handler that serves it and its message types. */
function buildRoutes(services: StackShiftServices): Map<string, Route> {
  const registry = createFileRegistry(loadDescriptorSet())
  const routes = new Map<string, Route>()
  for (const name of Object.keys(stackShiftServiceDefinitions) as Array<keyof StackShiftServices>) {
    const definition = withDecodeErrors(stackShiftServiceDefinitions[name])
    const implementation: Record<string, unknown> = services[name]
    for (const [key, method] of Object.entries(definition) as Array<[string, MethodDefinition<unknown, unknown>]>) {
      if (method.requestStream || method.responseStream) {
        routes.set(method.path, { method: undefined })
        continue
      }
      const [, serviceName = '', methodName = ''] = method.path.split('/')
      const descriptor = registry.getService(serviceName)?.methods.find((candidate) => candidate.name === methodName)
      if (!descriptor) throw new Error(`the descriptor set has no method ${method.path}: run npm run gen`)
      // A unary method's implementation is a unary handler (the generated server interface says so).
      const handler = implementation[key] as handleUnaryCall<unknown, unknown>
      routes.set(method.path, { method: { definition: method, handler, input: descriptor.input, output: descriptor.output } })
    }
  }
  return routes
}
