import { existsSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fromBinary, toBinary } from '@bufbuild/protobuf'
import { type DescriptorProto, type FileDescriptorProto, FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt'
import type { Server } from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { ReflectionService } from '@grpc/reflection'
import { protoPath as healthProtoPath } from 'grpc-health-check'
import type { Logger } from '../logger.js'
import { protoDir, serviceProtoFiles } from './proto-files.js'

/** grpc-health-check ships health.proto under proto/health/v1/. */
const healthProtoRoot = resolve(dirname(healthProtoPath), '../..')

/**
 * Adds gRPC server reflection (grpc.reflection.v1 and v1alpha), built from
 * the .proto files, so tools such as grpcurl and Postman can list the
 * services (the StackShift ones and grpc.health.v1.Health), describe them and
 * call them without local copies of the files. Returns false, after a
 * warning, when the files are not there (a build that did not ship them):
 * reflection is a convenience and not worth refusing to start over.
 *
 * proto-loader merges the files of one package, so reflection names them by
 * package (`stackshift_jobs_v1.proto`); clients look them up by symbol.
 */
export function addReflection(server: Pick<Server, 'addService'>, logger: Logger): boolean {
  const missing = serviceProtoFiles.filter((file) => !existsSync(join(protoDir, file)))
  if (missing.length > 0) {
    logger.warn({ protoDir, missing }, 'gRPC reflection is off: .proto files not found')
    return false
  }
  // keepCase: the descriptors carry field names as written in the files (run_id, not runId).
  const definition = protoLoader.loadSync([...serviceProtoFiles, relative(healthProtoRoot, healthProtoPath)], {
    includeDirs: [protoDir, healthProtoRoot],
    keepCase: true,
  })
  new ReflectionService(withLinkedFiles(definition)).addToServer(server)
  return true
}

/**
 * The package definition with its file descriptors linked the way protoc
 * links them. proto-loader leaves every file's `dependency` list empty and
 * type references relative (grpc/grpc-node#2595); reflection clients that
 * link descriptors strictly (grpcurl, Go's protodesc) then fail on any type
 * from another file ("unresolvable reference to google.protobuf.Timestamp").
 * Here each reference is resolved by the protobuf scoping rules, written
 * fully qualified, and the file that defines it listed as a dependency.
 */
function withLinkedFiles(definition: protoLoader.PackageDefinition): protoLoader.PackageDefinition {
  const files = new Map<string, FileDescriptorProto>()
  for (const type of Object.values(definition)) {
    for (const bytes of fileDescriptorsOf(type) ?? []) {
      const file = fromBinary(FileDescriptorProtoSchema, bytes)
      if (!files.has(file.name)) files.set(file.name, file)
    }
  }
  const encoded = new Map(
    [...linkFiles([...files.values()])].map((file) => [file.name, Buffer.from(toBinary(FileDescriptorProtoSchema, file))]),
  )
  return Object.fromEntries(
    Object.entries(definition).map(([name, type]) => {
      const descriptors = fileDescriptorsOf(type)
      if (!descriptors) return [name, type]
      return [
        name,
        { ...type, fileDescriptorProtos: descriptors.map((bytes) => encoded.get(fromBinary(FileDescriptorProtoSchema, bytes).name)!) },
      ]
    }),
  )
}

/** The encoded files a message or enum definition carries (services carry none). */
function fileDescriptorsOf(type: protoLoader.AnyDefinition): Buffer[] | undefined {
  const descriptors: unknown = (type as { fileDescriptorProtos?: unknown }).fileDescriptorProtos
  return Array.isArray(descriptors) ? (descriptors as Buffer[]) : undefined
}

/** Resolves every message and method type reference of `files` in place; returns them. */
function linkFiles(files: FileDescriptorProto[]): FileDescriptorProto[] {
  const fileBySymbol = new Map<string, FileDescriptorProto>()
  const visitMessages = (
    scope: string,
    messages: readonly DescriptorProto[],
    visit: (message: DescriptorProto, fullName: string) => void,
  ) => {
    for (const message of messages) {
      const fullName = qualify(scope, message.name)
      visit(message, fullName)
      visitMessages(fullName, message.nestedType, visit)
    }
  }
  for (const file of files) {
    for (const enumType of file.enumType) fileBySymbol.set(qualify(file.package, enumType.name), file)
    visitMessages(file.package, file.messageType, (message, fullName) => {
      fileBySymbol.set(fullName, file)
      for (const enumType of message.enumType) fileBySymbol.set(qualify(fullName, enumType.name), file)
    })
  }
  /** A reference's full name: relative ones are looked up from the innermost scope outwards. */
  const resolveName = (reference: string, scope: string): string | undefined => {
    if (reference.startsWith('.')) return fileBySymbol.has(reference.slice(1)) ? reference.slice(1) : undefined
    for (let current = scope; ; current = current.includes('.') ? current.slice(0, current.lastIndexOf('.')) : '') {
      const candidate = qualify(current, reference)
      if (fileBySymbol.has(candidate)) return candidate
      if (current === '') return undefined
    }
  }
  for (const file of files) {
    const dependencies = new Set<string>()
    const link = (reference: string, scope: string): string => {
      const fullName = reference && resolveName(reference, scope)
      if (!fullName) return reference
      const definedIn = fileBySymbol.get(fullName)!
      if (definedIn !== file) dependencies.add(definedIn.name)
      return `.${fullName}`
    }
    visitMessages(file.package, file.messageType, (message, fullName) => {
      for (const field of message.field) field.typeName = link(field.typeName, fullName)
    })
    for (const service of file.service) {
      for (const method of service.method) {
        method.inputType = link(method.inputType, file.package)
        method.outputType = link(method.outputType, file.package)
      }
    }
    file.dependency = [...dependencies].sort()
  }
  return files
}

function qualify(scope: string, name: string): string {
  return scope ? `${scope}.${name}` : name
}
