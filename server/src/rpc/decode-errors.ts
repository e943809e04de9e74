import { createFileRegistry, type DescMessage, fromBinary } from '@bufbuild/protobuf'
import { isReflectMessage, reflect, type ReflectList, type ReflectMap, type ReflectMessage } from '@bufbuild/protobuf/reflect'
import type { ServiceDefinition } from '@grpc/grpc-js'
import { loadDescriptorSet } from '@stackshift/proto/descriptor-set'
import { InvalidArgumentError } from '../core/errors.js'

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

/**
 * Names the field: the request is decoded again with @bufbuild/protobuf from
 * the protocol's descriptor set, which reads 64-bit integers whole (as
 * bigint), and searched for the one out of range. Bytes that are not the
 * message at all get an error naming the request type and quoting the
 * generated decoder.
 */
function explainDecodeFailure(methodPath: string, bytes: Buffer, error: unknown): InvalidArgumentError {
  const reason = error instanceof Error ? error.message : String(error)
  const type = requestTypes().get(methodPath)
  if (!type) return new InvalidArgumentError('request', `could not be decoded (${reason})`)
  let message: ReflectMessage | undefined
  try {
    message = reflect(type, fromBinary(type, bytes))
  } catch {
    // Not protobuf at all: the generated decoder's reason says why.
  }
  return (
    (message && findOutOfRange(message, '')) ?? new InvalidArgumentError('request', `is not a valid ${type.typeName} message (${reason})`)
  )
}

/** The first 64-bit integer field of `message` (depth first, in field order) outside ±(2^53 - 1). */
function findOutOfRange(message: ReflectMessage, prefix: string): InvalidArgumentError | undefined {
  for (const field of message.fields) {
    if (!message.isSet(field)) continue
    const path = prefix ? `${prefix}.${field.name}` : field.name
    const value: unknown = message.get(field)
    const items: Array<[string, unknown]> =
      field.fieldKind === 'map'
        ? [...(value as ReflectMap)].map(([key, item]) => [`${path}[${String(key)}]`, item])
        : field.fieldKind === 'list'
          ? [...(value as ReflectList)].map((item, index) => [`${path}[${index}]`, item])
          : [[path, value]]
    for (const [itemPath, item] of items) {
      if (isReflectMessage(item)) {
        const found = findOutOfRange(item, itemPath)
        if (found) return found
      } else if (typeof item === 'bigint') {
        // Only 64-bit integer fields decode to bigint.
        if (item > maxSafe) return new InvalidArgumentError(itemPath, `must be at most ${maxSafe} (2^53 - 1)`)
        if (item < -maxSafe) return new InvalidArgumentError(itemPath, `must be at least -${maxSafe} (-(2^53 - 1))`)
      }
    }
  }
  return undefined
}

let loadedRequestTypes: Map<string, DescMessage> | undefined

/** Request type by method path (`/stackshift.jobs.v1.RunService/Enqueue`), from the descriptor set, built on first use. */
function requestTypes(): Map<string, DescMessage> {
  if (loadedRequestTypes) return loadedRequestTypes
  const types = new Map<string, DescMessage>()
  for (const file of createFileRegistry(loadDescriptorSet()).files) {
    for (const service of file.services) {
      for (const method of service.methods) types.set(`/${service.typeName}/${method.name}`, method.input)
    }
  }
  return (loadedRequestTypes = types)
}
