import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

const repoRoot = fileURLToPath(new URL('../..', import.meta.url))

/**
 * Runs a TypeScript file of the repository in a child process (tsx, with
 * workspace packages resolved to their sources). Lines it prints on stdout are
 * collected; `waitForLine` resolves when one matches.
 */
export class ChildScript {
  readonly process: ChildProcess
  readonly lines: string[] = []
  private readonly watchers = new Set<() => void>()

  constructor(relativePath: string, env: Record<string, string>, nodeArgs: readonly string[] = []) {
    this.process = spawn(process.execPath, ['--conditions=@stackshift/source', '--import', 'tsx', ...nodeArgs, relativePath], {
      cwd: repoRoot,
      // A server started here takes free metrics and console ports, so parallel test files never collide on 9464 or 8233.
      env: { ...process.env, STACKSHIFT_METRICS_HOST: '127.0.0.1', STACKSHIFT_METRICS_PORT: '0', STACKSHIFT_CONSOLE_PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let buffer = ''
    this.process.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      let newline: number
      while ((newline = buffer.indexOf('\n')) >= 0) {
        this.lines.push(buffer.slice(0, newline))
        buffer = buffer.slice(newline + 1)
      }
      for (const watcher of this.watchers) watcher()
    })
  }

  /** Resolves with the first line (so far or later) that matches. */
  waitForLine(pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const line = this.lines.find((l) => pattern.test(l))
        if (line === undefined) return false
        this.watchers.delete(check)
        clearTimeout(timer)
        resolve(line)
        return true
      }
      const timer = setTimeout(() => {
        this.watchers.delete(check)
        reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms; got:\n${this.lines.join('\n')}`))
      }, timeoutMs)
      if (!check()) this.watchers.add(check)
    })
  }

  /** Kills the process with `signal` and waits for it to exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return
    const exited = once(this.process, 'exit')
    this.process.kill(signal)
    await exited
  }
}
