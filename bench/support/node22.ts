import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/** The Node.js release the benchmark runs every system on: the peers' current releases need Node 22. */
export const benchNodeVersion = '22.23.3'

/**
 * A Node 22 binary: this one if it is Node 22 or newer, otherwise the release
 * published on the npm registry as node-<platform>-<arch>, installed once
 * under `workDir`.
 */
export function ensureBenchNode(workDir: string): string {
  if (Number(process.versions.node.split('.')[0]) >= 22) return process.execPath
  const dir = join(workDir, `node-${benchNodeVersion}`)
  const packageName = `node-${process.platform}-${process.arch}`
  const binary = join(dir, 'node_modules', packageName, 'bin', 'node')
  if (!existsSync(binary)) {
    mkdirSync(dir, { recursive: true })
    // Its own package.json keeps npm from treating the repository as the project.
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'bench-node', private: true }))
    console.log(`installing ${packageName}@${benchNodeVersion} from the npm registry for the benchmark`)
    execFileSync('npm', ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', `${packageName}@${benchNodeVersion}`], {
      cwd: dir,
      stdio: 'inherit',
    })
  }
  return binary
}
