import { readFileSync } from 'node:fs'
import { fromBinary } from '@bufbuild/protobuf'
import { type FileDescriptorSet, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt'

/**
 * The encoded set, committed at the package's root: one directory up from
 * both src/ (run from source) and dist/ (built), so one relative URL serves both.
 */
const descriptorSetUrl = new URL('../descriptor-set.binpb', import.meta.url)

let descriptorSet: FileDescriptorSet | undefined

/**
 * The protocol as a google.protobuf.FileDescriptorSet, built by `buf build`
 * from the same .proto files as the generated code (`npm run gen`): the
 * StackShift files, everything they import (google/protobuf/timestamp.proto),
 * and grpc-health-check's health/v1/health.proto, with source info (the
 * comments). Linked as protoc links: type references are fully qualified and
 * each file lists its dependencies. Read and decoded on the first call, then
 * shared: do not modify it.
 */
export function loadDescriptorSet(): FileDescriptorSet {
  descriptorSet ??= fromBinary(FileDescriptorSetSchema, readFileSync(descriptorSetUrl))
  return descriptorSet
}
