// Builds descriptor-set.binpb: a google.protobuf.FileDescriptorSet of the StackShift
// .proto files, everything they import, and grpc-health-check's health.proto, with
// source info (comments). Server reflection serves it, so the health service is in it.
//
//   node scripts/descriptor-set.mjs          writes descriptor-set.binpb (npm run gen)
//   import { buildDescriptorSet } from ...   the bytes, for scripts/check-gen.mjs
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt'

const protoDir = fileURLToPath(new URL('..', import.meta.url))
/** Where the set is committed, beside src/ and dist/ (see src/descriptor-set.ts). */
export const descriptorSetPath = join(protoDir, 'descriptor-set.binpb')
/** grpc-health-check ships health.proto as proto/health/v1/health.proto. */
const healthProtoRoot = join(dirname(createRequire(import.meta.url).resolve('grpc-health-check/package.json')), 'proto')

/** Each input built by `buf build` (imports included, source info kept), merged into one set, each file once. */
export function buildDescriptorSet() {
  const scratch = mkdtempSync(join(tmpdir(), 'stackshift-descriptors-'))
  try {
    const files = new Map()
    for (const [index, input] of [protoDir, healthProtoRoot].entries()) {
      const output = join(scratch, `${index}.binpb`)
      execFileSync('npx', ['buf', 'build', input, '--as-file-descriptor-set', '-o', output], { cwd: protoDir, stdio: 'inherit' })
      // Decoding and merging is what concatenating the two encoded sets would do,
      // except that a file both import (google/protobuf/*) is kept once.
      for (const file of fromBinary(FileDescriptorSetSchema, readFileSync(output)).file) {
        if (!files.has(file.name)) files.set(file.name, file)
      }
    }
    return toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: [...files.values()] }))
  } finally {
    rmSync(scratch, { recursive: true, force: true })
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(descriptorSetPath, buildDescriptorSet())
}
