import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/*
 * The `stackshift` command as a user runs it: the script npm links into
 * node_modules/.bin, in its own process, configured by the environment.
 */

const repoRoot = fileURLToPath(new URL('../..', import.meta.url))
const command = fileURLToPath(new URL('../../node_modules/.bin/stackshift', import.meta.url))

/** What the command printed and its exit status. */
export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/**
 * Runs `stackshift ...args` with STACKSHIFT_ADDRESS and STACKSHIFT_API_KEY
 * set (and `env` on top); STACKSHIFT_NAMESPACE is unset unless `env` sets it.
 */
export function runCli(args: string[], env: Record<string, string>): Promise<CliResult> {
  const inherited = { ...process.env }
  delete inherited.STACKSHIFT_NAMESPACE
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd: repoRoot, env: { ...inherited, ...env } }, (error, stdout, stderr) => {
      // A number is the command's exit status; anything else (no such file, a signal) is a failure to run it.
      if (error === null) resolve({ code: 0, stdout, stderr })
      else if (typeof error.code === 'number') resolve({ code: error.code, stdout, stderr })
      else reject(new Error(`stackshift ${args.join(' ')} did not run`, { cause: error }))
    })
  })
}
