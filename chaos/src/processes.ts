import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream, type WriteStream } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const repoRoot = fileURLToPath(new URL('../..', import.meta.url))
export const serverEntry = join(repoRoot, 'server', 'dist', 'main.js')
export const workerEntry = join(repoRoot, 'chaos', 'dist', 'worker.js')

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** How a child process ended. */
interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

/**
 * A child process whose output goes, line by line, to a log file (and to
 * `onLine`), and whose exit can be awaited.
 */
class Child {
  readonly exited: Promise<Exit>
  private readonly log: WriteStream

  constructor(
    readonly process: ChildProcess,
    logPath: string,
    onLine: (line: string) => void,
  ) {
    this.log = createWriteStream(logPath, { flags: 'a' })
    for (const stream of [process.stdout!, process.stderr!]) {
      let partial = ''
      stream.on('data', (chunk: Buffer) => {
        this.log.write(chunk)
        const lines = (partial + chunk.toString()).split('\n')
        partial = lines.pop()!
        for (const line of lines) onLine(line)
      })
    }
    this.exited = new Promise((resolve) => process.once('exit', (code, signal) => resolve({ code, signal })))
    void this.exited.then(() => setTimeout(() => this.log.end(), 100))
  }

  get isRunning(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null
  }

  async kill(): Promise<void> {
    if (!this.isRunning) return
    this.process.kill('SIGKILL')
    await this.exited
  }
}

/** An error a server logged (level error or fatal): its message and the error's. */
export interface LoggedError {
  server: number
  msg: string
  err: string | undefined
  at: number
}

/**
 * One StackShift server: `node server/dist/main.js` on a fixed port, so
 * workers and clients reconnect to it after a restart. Its JSON log goes to
 * `<logDir>/server-<n>.log`; errors it logs are collected.
 */
export class ServerProcess {
  private child: Child | undefined
  /** Starts so far (1 for the first). */
  incarnation = 0
  readonly errors: LoggedError[] = []
  /** Worker ids that connected to the current incarnation. */
  private readonly connectedWorkers = new Set<string>()

  constructor(
    readonly index: number,
    readonly port: number,
    private readonly env: Record<string, string>,
    private readonly logDir: string,
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`
  }

  get isRunning(): boolean {
    return this.child?.isRunning ?? false
  }

  /**
   * Starts the server and resolves once it listens: true, or false if it
   * exited first (no database to migrate, say). With `failpoints`, they are
   * armed (STACKSHIFT_FAILPOINTS).
   */
  async start(failpoints: string[] = []): Promise<boolean> {
    this.incarnation++
    this.connectedWorkers.clear()
    let onListening: () => void = () => {}
    const listening = new Promise<void>((resolve) => (onListening = resolve))
    const child = new Child(
      spawn(process.execPath, [serverEntry], {
        env: { ...process.env, ...this.env, STACKSHIFT_PORT: String(this.port), STACKSHIFT_FAILPOINTS: failpoints.join(',') },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
      join(this.logDir, `server-${this.index}.log`),
      (line) => this.read(line, onListening),
    )
    this.child = child
    const outcome = await Promise.race([listening.then(() => true), child.exited.then(() => false)])
    return outcome
  }

  /** Starts the server, again and again (a second apart) while it exits at start, until `timeoutMs` passes. */
  async startUntilUp(timeoutMs = 180_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!(await this.start())) {
      if (Date.now() > deadline) throw new Error(`server ${this.index} did not start within ${timeoutMs} ms; see server-${this.index}.log`)
      await sleep(1000)
    }
  }

  /** SIGKILL, and wait until it is gone. */
  async kill(): Promise<void> {
    await this.child?.kill()
  }

  /** Resolves with how the server ended, or undefined if it still runs after `timeoutMs`. */
  async waitForExit(timeoutMs: number): Promise<Exit | undefined> {
    const child = this.child
    if (!child) return undefined
    let timer: NodeJS.Timeout | undefined
    const result = await Promise.race([
      child.exited,
      new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), timeoutMs))),
    ])
    clearTimeout(timer)
    return result
  }

  /**
   * Waits until each of `workerIds` has connected to the current incarnation,
   * for up to `timeoutMs`. Returns how long that took, or undefined if some
   * did not connect in time.
   */
  async waitForWorkers(workerIds: readonly string[], timeoutMs: number): Promise<number | undefined> {
    const startedAt = Date.now()
    while (!workerIds.every((id) => this.connectedWorkers.has(id))) {
      if (Date.now() - startedAt > timeoutMs) return undefined
      await sleep(50)
    }
    return Date.now() - startedAt
  }

  private read(line: string, onListening: () => void): void {
    if (!line.startsWith('{')) return
    let entry: { level?: number | string; msg?: string; err?: { message?: string }; workerId?: string }
    try {
      entry = JSON.parse(line) as typeof entry
    } catch {
      return
    }
    if (entry.msg === 'StackShift server listening') onListening()
    if (entry.msg === 'worker connected' && entry.workerId !== undefined) this.connectedWorkers.add(entry.workerId)
    // pino writes the level as a label (its formatter here) or a number.
    const isError = entry.level === 'error' || entry.level === 'fatal' || (typeof entry.level === 'number' && entry.level >= 50)
    if (isError) this.errors.push({ server: this.index, msg: entry.msg ?? '', err: entry.err?.message, at: Date.now() })
  }
}

/** A worker incarnation: which process ran under which worker id, and when it was killed or stopped. */
export interface WorkerIncarnation {
  worker: number
  workerId: string
  pid: number | undefined
  startedAt: number
  killedAt?: number
  stoppedAt?: number
  continuedAt?: number
}

/** An error a chaos handler met (job.ts reports each on stderr), other than a suspension. */
export interface HandlerError {
  workerId: string
  runId: string
  attempt: number
  /** The handler's call that threw: `step.run`, `state.increment` ... */
  call: string
  /** The error's name: `LeaseLostError` ... */
  error: string
  at: number
}

/**
 * One worker process: `node chaos/dist/worker.js`, connected to one server.
 * Each start is a new incarnation with its own worker id (`w<n>.<k>`), which
 * the server stores with every attempt, so an attempt can be traced to the
 * process that ran it (and to what was done to that process).
 */
export class WorkerProcess {
  private child: Child | undefined
  readonly incarnations: WorkerIncarnation[] = []
  /** Errors the job's handlers met, every incarnation's. */
  readonly handlerErrors: HandlerError[] = []
  /** The current incarnation's steps in flight (side effect recorded, result not yet stored), by `<run>/<step>#<attempt>`. */
  private readonly stepsInFlight = new Set<string>()

  constructor(
    readonly index: number,
    private readonly env: Record<string, string>,
    private readonly logDir: string,
  ) {}

  get current(): WorkerIncarnation | undefined {
    return this.incarnations.at(-1)
  }

  /** Whether the current incarnation is stopped (SIGSTOP, not yet continued). */
  get isFrozen(): boolean {
    const current = this.current
    return current?.stoppedAt !== undefined && current.continuedAt === undefined
  }

  /** Starts a new incarnation; resolves once its worker is connected and taking runs. */
  async start(): Promise<void> {
    const workerId = `w${this.index}.${this.incarnations.length + 1}`
    let onReady: () => void = () => {}
    const ready = new Promise<void>((resolve) => (onReady = resolve))
    const child = new Child(
      spawn(process.execPath, [workerEntry], {
        env: { ...process.env, ...this.env, CHAOS_WORKER_ID: workerId },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
      join(this.logDir, `worker-${this.index}.log`),
      (line) => this.read(line, onReady),
    )
    this.child = child
    this.stepsInFlight.clear()
    this.incarnations.push({ worker: this.index, workerId, pid: child.process.pid, startedAt: Date.now() })
    const started = await Promise.race([ready.then(() => true), child.exited.then(() => false)])
    if (!started) throw new Error(`worker ${workerId} exited before it was ready; see worker-${this.index}.log`)
  }

  /** How many steps the current incarnation has in flight. */
  get stepCount(): number {
    return this.stepsInFlight.size
  }

  /**
   * Waits until the current incarnation is in the middle of a step (its side
   * effect recorded, its result not stored), for up to `timeoutMs`. Returns
   * how many steps it then has in flight (0: none came).
   */
  async waitForStepInFlight(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs
    while (this.stepsInFlight.size === 0 && Date.now() < deadline) await sleep(20)
    return this.stepsInFlight.size
  }

  private read(line: string, onReady: () => void): void {
    if (line === 'ready') onReady()
    if (!line.startsWith('{"msg":"chaos ')) return
    let entry: { msg?: string; phase?: string; runId?: string; attempt?: number; stepId?: string; call?: string; error?: string }
    try {
      entry = JSON.parse(line) as typeof entry
    } catch {
      return
    }
    const workerId = this.current?.workerId ?? '?'
    if (entry.msg === 'chaos step') {
      const step = `${entry.runId}/${entry.stepId}#${entry.attempt}`
      if (entry.phase === 'start') this.stepsInFlight.add(step)
      else this.stepsInFlight.delete(step)
    } else if (entry.msg === 'chaos handler error') {
      this.handlerErrors.push({
        workerId,
        runId: entry.runId ?? '?',
        attempt: entry.attempt ?? 0,
        call: entry.call ?? '?',
        error: entry.error ?? '?',
        at: Date.now(),
      })
    }
  }

  async kill(): Promise<void> {
    const incarnation = this.current
    if (incarnation && this.child?.isRunning) incarnation.killedAt = Date.now()
    await this.child?.kill()
  }

  /** SIGSTOP: the process freezes, its connections stay open, its heartbeats stop. */
  stop(): void {
    if (!this.child?.isRunning) return
    this.child.process.kill('SIGSTOP')
    this.current!.stoppedAt = Date.now()
  }

  /** SIGCONT: the process carries on where it was, with leases that have expired meanwhile. */
  resume(): void {
    if (!this.child?.isRunning) return
    this.child.process.kill('SIGCONT')
    this.current!.continuedAt = Date.now()
  }

  /** Ends the process whatever state it is in (SIGCONT first: a stopped process takes SIGKILL, but say it plainly). */
  async destroy(): Promise<void> {
    this.child?.process.kill('SIGCONT')
    await this.child?.kill()
  }
}
