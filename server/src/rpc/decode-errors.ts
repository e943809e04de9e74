import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { ServiceDefinition } from '@grpc/grpc-js'
import protobuf from 'protobufjs'
import { InvalidArgumentError } from '../core/errors.js'
import { protoDir, serviceProtoFiles } from './proto-files.js'

/*
 * grpc-js answers a request its deserializer throws on with INTERNAL and no
 * detail. The generated decoders throw on bytes that are not the message, and
 * on 64-bit integers beyond what a JavaScript number holds exactly (2^53 - 1):
 * both are the client's mistake and deserve INVALID_ARGUMENT naming the field.
 * So every method's deserializer is wrapped: a request it cannot decode
 * becomes an empty message, remembered with the error, and the handlers
 * (unaryHandler and the two streams) answer with that error first.
 */

const decodeFailures = new WeakMap<object, InvalidArgumentError>()

/** The service definition with every request deserializer wrapped as described above. */
export function withDecodeErrors<Definition extends ServiceDefinition>(definition: Definition): Definition {
  const methods = Object.entries(definition).map(([name, method]) => {
    const decode = method.requestDeserialize
    const requestDeserialize = (bytes: Buffer): unknown => {
      try {
        return decode(bytes)
      } catch (error) {
        const empty = decode(Buffer.alloc(0)) as object
        decodeFailures.set(empty, explainDecodeFailure(method.path, bytes, error))
        return empty
      }
    }
    return [name, { ...method, requestDeserialize }]
  })
  return Object.fromEntries(methods) as Definition
}

/** Why a request could not be decoded, if it could not. */
export function decodeFailureOf(request: unknown): InvalidArgumentError | undefined {
  return typeof request === 'object' && request !== null ? decodeFailures.get(request) : undefined
}

const maxSafe = BigInt(Number.MAX_SAFE_INTEGER)
const sixtyFourBitTypes = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64'])

/**
 * Names the field: the request is decoded again by protobufjs from the .proto
 * files, which reads 64-bit integers whole, and searched for the one out of
 * range. Only this rare path loads the files; without them (a build that did
 * not ship them) the error names the request and quotes the decoder.
 */
function explainDecodeFailure(methodPath: string, bytes: Buffer, error: unknown): InvalidArgumentError {
  const reason = error instanceof Error ? error.message : String(error)
  const type = requestTypes()?.get(methodPath)
  if (!type) return new InvalidArgumentError('request', `could not be decoded (${reason})`)
  let message: protobuf.Message | undefined
  try {
    message = type.decode(bytes)
  } catch {
    // Not protobuf at all: the generated decoder's reason says why.
  }
  return (
    (message && findOutOfRange(type, message, '')) ??
    new InvalidArgumentError('request', `is not a valid ${type.fullName.slice(1)} message (${reason})`)
  )
}

/** The first 64-bit integer field of `message` (depth first, in field order) outside ±(2^53 - 1). */
function findOutOfRange(type: protobuf.Type, message: protobuf.Message, prefix: string): InvalidArgumentError | undefined {
  const values = message as unknown as Record<string, unknown>
  for (const field of type.fieldsArray) {
    const value = values[field.name]
    if (value === undefined || value === null) continue
    const path = prefix ? `${prefix}.${field.name}` : field.name
    const items: Array<[string, unknown]> = field.map
      ? Object.entries(value as Record<string, unknown>).map(([key, item]) => [`${path}[${key}]`, item])
      : field.repeated
        ? (value as unknown[]).map((item, index) => [`${path}[${index}]`, item])
        : [[path, value]]
    const fieldType = field.resolve().resolvedType
    for (const [itemPath, item] of items) {
      if (fieldType instanceof protobuf.Type) {
        const found = findOutOfRange(fieldType, item as protobuf.Message, itemPath)
        if (found) return found
      } else if (sixtyFourBitTypes.has(field.type)) {
        // protobufjs gives a Long (or a number without the long package); both print whole.
        const integer = typeof item === 'number' ? BigInt(item) : BigInt(String(item))
        if (integer > maxSafe) return new InvalidArgumentError(itemPath, `must be at most ${maxSafe} (2^53 - 1)`)
        if (integer < -maxSafe) return new InvalidArgumentError(itemPath, `must be at least -${maxSafe} (-(2^53 - 1))`)
      }
    }
  }
  return undefined
}

let loadedRequestTypes: Map<string, protobuf.Type> | null | undefined

/** Request type by method path (`/stackshift.jobs.v1.RunService/Enqueue`); null without the .proto files. */
function requestTypes(): Map<string, protobuf.Type> | null {
  if (loadedRequestTypes !== undefined) return loadedRequestTypes
  if (!serviceProtoFiles.every((file) => existsSync(join(protoDir, file)))) return (loadedRequestTypes = null)
  const root = new protobuf.Root()
  // Files and imports are named relative to protoDir; google/protobuf/* come with protobufjs.
  root.resolvePath = (_origin, target) => join(protoDir, target)
  root.loadSync([...serviceProtoFiles], { keepCase: true }).resolveAll()
  const types = new Map<string, protobuf.Type>()
  for (const service of root.nestedArray.flatMap(collectServices)) {
    const serviceName = service.fullName.slice(1)
    for (const method of service.methodsArray) types.set(`/${serviceName}/${method.name}`, method.resolvedRequestType!)
  }
  return (loadedRequestTypes = types)
}

function collectServices(object: protobuf.ReflectionObject): protobuf.Service[] {
  if (object instanceof protobuf.Service) return [object]
  if (object instanceof protobuf.Namespace) return object.nestedArray.flatMap(collectServices)
  return []
}
