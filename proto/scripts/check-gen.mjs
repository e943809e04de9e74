// Fails when the committed ts-proto output differs from what the .proto files generate now.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const protoDir = fileURLToPath(new URL('..', import.meta.url))
const repoDir = join(protoDir, '..')
const scratch = mkdtempSync(join(tmpdir(), 'stackshift-gen-'))
const outputs = ['server/src/gen', 'sdk/src/gen']

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

try {
  // `-o` prefixes the template's out paths (../server/src/gen), so the scratch
  // copy mirrors the repository layout one level below `scratch`.
  execFileSync('npx', ['buf', 'generate', '-o', join(scratch, 'proto')], { cwd: protoDir, stdio: 'inherit' })
  const stale = []
  for (const output of outputs) {
    const fresh = new Map(listFiles(join(scratch, output)).map((f) => [relative(join(scratch, output), f), f]))
    const committed = new Map(listFiles(join(repoDir, output)).map((f) => [relative(join(repoDir, output), f), f]))
    for (const [name, file] of fresh) {
      const current = committed.get(name)
      if (!current || readFileSync(current, 'utf8') !== readFileSync(file, 'utf8')) stale.push(join(output, name))
    }
    for (const name of committed.keys()) if (!fresh.has(name)) stale.push(join(output, name) + ' (no longer generated)')
  }
  if (stale.length > 0) {
    console.error('Generated code is stale; run `npm run gen` and commit the result:\n  ' + stale.join('\n  '))
    process.exit(1)
  }
  console.log('Generated code is up to date.')
} finally {
  rmSync(scratch, { recursive: true, force: true })
}
