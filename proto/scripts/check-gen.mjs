// Fails when the committed generated files differ from what the .proto files make now:
// the ts-proto output under src/gen and descriptor-set.binpb.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildDescriptorSet, descriptorSetPath } from './descriptor-set.mjs'

const protoDir = fileURLToPath(new URL('..', import.meta.url))
const scratch = mkdtempSync(join(tmpdir(), 'stackshift-gen-'))
const generatedDir = 'src/gen'

function listFiles(dir) {
  let names = []
  try {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name)
      names = statSync(path).isDirectory() ? names.concat(listFiles(path)) : names.concat(path)
    }
  } catch (error) {
    if (error.code !== 'ENOENT') throw error
  }
  return names
}

function readIfPresent(path) {
  try {
    return readFileSync(path)
  } catch (error) {
    if (error.code === 'ENOENT') return undefined
    throw error
  }
}

try {
  // `-o` prefixes the template's out path (src/gen): the fresh copy lands in scratch/src/gen.
  execFileSync('npx', ['buf', 'generate', '-o', scratch], { cwd: protoDir, stdio: 'inherit' })
  const stale = []
  const fresh = new Map(listFiles(join(scratch, generatedDir)).map((f) => [relative(join(scratch, generatedDir), f), f]))
  const committed = new Map(listFiles(join(protoDir, generatedDir)).map((f) => [relative(join(protoDir, generatedDir), f), f]))
  for (const [name, file] of fresh) {
    const current = committed.get(name)
    if (!current || readFileSync(current, 'utf8') !== readFileSync(file, 'utf8')) stale.push(join(generatedDir, name))
  }
  for (const name of committed.keys()) if (!fresh.has(name)) stale.push(join(generatedDir, name) + ' (no longer generated)')
  const descriptorSet = readIfPresent(descriptorSetPath)
  if (!descriptorSet || Buffer.compare(descriptorSet, Buffer.from(buildDescriptorSet())) !== 0) {
    stale.push(relative(protoDir, descriptorSetPath))
  }
  if (stale.length > 0) {
    console.error('Generated files are stale; run `npm run gen` and commit the result:\n  ' + stale.join('\n  '))
    process.exitCode = 1
  } else {
    console.log('Generated files are up to date.')
  }
} finally {
  rmSync(scratch, { recursive: true, force: true })
}
