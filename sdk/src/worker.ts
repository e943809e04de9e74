import { inspect } from 'node:util'
import { hostname } from 'node:os'
import { protocolLimits } from '@stackshift/proto/limits'
import { RevokeReason, type RevokedLease, type Task, type WorkerServiceClient } from '@stackshift/proto/worker-service'
import { LeaseLostError, RunCancelledError, UnavailableError, WorkerShutdownError } from './errors.js'
import { Execution, type ExecutionDeps, runLogFields } from './execution.js'
import { toJobPoliciesMessage } from './flow.js'
import type { JobDefinition } from './job.js'
import type { Logger } from './logger.js'
import { sdkPackage } from './version.js'
import { WorkerConnection } from './worker-connection.js'

/** Options of `stackshift.worker()`. */
export interface WorkerOptions {
  /** Queues to take runs from. */
  queues: string[]
  /** Most runs executed at once. Default 10. */
  concurrency?: number
  /**
   * Runs the worker may hold ready to start, beyond `concurrency`, while its
   * handlers are short (under 50 ms on average): the next runs are already
   * here when a handler returns, and the server claims them in larger batches.
   * Held runs keep their lease by heartbeat like running ones. Not used while
   * handlers are slow, so slow runs are not kept from idle workers. Default:
   * nine times `concurrency`, with `concurrency + prefetch` at most 1,000: two
   * of the server's claims of 500, so one batch is claimed while the worker
   * executes the other (drained within 450 ms); 0 turns it off.
   * `concurrency + prefetch` may be at most 10,000.
   */
  prefetch?: number
  /** Only these registered jobs (default: every job registered when `start()` is called). */
  jobs?: string[]
  /** Lease duration asked of the server, in ms (500 to 3,600,000). Default: the server's (30 s). */
  leaseMs?: number
  /** On `stop()`, how long running handlers may take before their runs are handed back, in ms. Default 30,000. */
  shutdownGraceMs?: number
  /** Name shown in run history. Default `<hostname>:<pid>`. */
  workerId?: string
  /** How long `start()` keeps trying to reach the server, in ms. Default 60,000. */
  connectTimeoutMs?: number
}

/** Sent in the hello, for the server's logs: `stackshift-ts/<version>`. */
const sdkName = `stackshift-ts/${sdkPackage.version}`

/** Prefetch applies while the average handler takes less than this. */
const shortHandlerMs = 50
/** Runs held ready per slot while handlers are short (see WorkerOptions.prefetch). */
const defaultPrefetchPerSlot = 9
/**
 * Runs in hand (running and ready) that the default prefetch stops at, 1,000:
 * the server claims at most `streamClaimMax` (500) runs at a time for a
 * stream, and holding two claims' worth keeps a claim running while the
 * worker executes.
 */
const defaultHeldMax = 2 * protocolLimits.streamClaimMax
/** The server's limit on the slots a worker stream may announce (10,000). */
const slotsMax = protocolLimits.slotsMax

/**
 * Executes runs of registered jobs. Connected to the server by one stream, it
 * announces its free slots, receives that many runs, executes them
 * concurrently, heartbeats every lease it holds in one message, and reconnects
 * (to any server) if the stream breaks.
 */
export class Worker {
  /** Attempts not yet finished (handler running, or its outcome being reported). */
  private readonly executions = new Set<Execution>()
  /** Received runs not started yet (prefetched), oldest first. */
  private readonly ready: Task[] = []
  /** Handlers running now; each holds one slot. */
  private busySlots = 0
  /** Slots the server believes are free: announced, not yet filled by a task. */
  private openCredits = 0
  /** Moving average of handler durations, ms. */
  private averageHandlerMs = 0
  private readonly prefetch: number
  private state: 'created' | 'starting' | 'running' | 'stopping' | 'stopped' = 'created'
  private connection: WorkerConnection | undefined
  private heartbeatTimer: NodeJS.Timeout | undefined
  private stopping: Promise<void> | undefined
  private isHeartbeatPending = false
  private readonly concurrency: number
  /** Set in `start()`, before any task can arrive. */
  private executionDeps: ExecutionDeps | undefined

  /** @internal created by `StackShift.worker()` */
  constructor(
    private readonly internals: {
      client: WorkerServiceClient
      namespace: string
      jobs: ReadonlyMap<string, JobDefinition>
      logger: Logger
      sendEvent: ExecutionDeps['sendEvent']
      runState: ExecutionDeps['runState']
    },
    private readonly options: WorkerOptions,
  ) {
    if (!Array.isArray(options.queues) || options.queues.length === 0)
      throw new TypeError('worker options.queues must name at least one queue')
    this.concurrency = options.concurrency ?? 10
    // Checked first: the default prefetch is derived from it.
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1)
      throw new TypeError(`worker options.concurrency must be a positive integer, got ${options.concurrency}`)
    this.prefetch = options.prefetch ?? Math.max(0, Math.min(defaultPrefetchPerSlot * this.concurrency, defaultHeldMax - this.concurrency))
    if (!Number.isInteger(this.prefetch) || this.prefetch < 0)
      throw new TypeError(`worker options.prefetch must be a non-negative integer, got ${options.prefetch}`)
    if (this.concurrency + this.prefetch > slotsMax)
      throw new TypeError(
        `worker options.concurrency + options.prefetch must be at most ${slotsMax}, got ${this.concurrency + this.prefetch}`,
      )
  }

  /** Handlers running now. */
  get activeRuns(): number {
    return this.busySlots
  }

  /**
   * Connects to the server and starts taking runs. Resolves once connected;
   * the worker then runs until `stop()`.
   */
  async start(): Promise<void> {
    if (this.state !== 'created') throw new Error(`worker cannot start: it is ${this.state}`)
    const jobs = this.selectJobs()
    const jobPolicies = [...jobs.values()]
      .filter((job) => job.policies !== undefined)
      .map((job) => ({ job: job.name, policies: toJobPoliciesMessage(job.policies!, `job "${job.name}" policies`) }))
    this.state = 'starting'
    const { client, namespace, logger } = this.internals
    const workerId = this.options.workerId ?? `${hostname()}:${process.pid}`
    await new Promise<void>((resolve, reject) => {
      const timeout = setTimeout(() => {
        void this.connection?.close()
        this.state = 'stopped'
        reject(new UnavailableError(`could not connect to the StackShift server within ${this.options.connectTimeoutMs ?? 60_000} ms`))
      }, this.options.connectTimeoutMs ?? 60_000)
      this.connection = new WorkerConnection({
        client,
        logger,
        hello: () => ({
          namespace,
          workerId,
          queues: this.options.queues,
          jobs: [...jobs.keys()],
          slots: this.announceSlots(),
          leaseMs: this.options.leaseMs ?? 0,
          sdk: sdkName,
          jobPolicies,
        }),
        onWelcome: (welcome) => {
          clearTimeout(timeout)
          this.startHeartbeats(welcome.heartbeatIntervalMs)
          resolve()
        },
        onTasks: (tasks) => this.accept(tasks, jobs),
        onRevoked: (revoked) => this.revoke(revoked),
        onFatal: (error) => {
          clearTimeout(timeout)
          this.state = 'stopped'
          reject(error)
          logger.error('the server refused this worker', { message: error.message })
        },
      })
      this.executionDeps = this.createExecutionDeps(this.connection, jobs)
      this.connection.connect()
    })
    this.finishStarting()
  }

  /** A stop() during start() has moved the worker on; otherwise it is running now. */
  private finishStarting(): void {
    if (this.state === 'starting') this.state = 'running'
  }

  /**
   * Graceful stop: takes no new runs, lets running handlers finish for up to
   * `graceMs`, then aborts the rest (their `signal` fires with a
   * WorkerShutdownError) and hands their runs back so other workers take them
   * at once, without waiting for the lease to expire.
   */
  stop(options: { graceMs?: number } = {}): Promise<void> {
    this.stopping ??= this.shutdown(options.graceMs ?? this.options.shutdownGraceMs ?? 30_000)
    return this.stopping
  }

  private async shutdown(graceMs: number): Promise<void> {
    const connection = this.connection
    this.state = 'stopping'
    if (!connection) {
      this.state = 'stopped'
      return
    }
    connection.drain()
    // Runs that never started go back at once.
    for (const task of this.ready.splice(0)) this.release(task)
    const everyDone = Promise.allSettled([...this.executions.values()].map((execution) => execution.done))
    let graceTimer: NodeJS.Timeout | undefined
    await Promise.race([everyDone, new Promise((done) => (graceTimer = setTimeout(done, graceMs)))])
    clearTimeout(graceTimer)
    const remaining = [...this.executions.values()]
    for (const execution of remaining) execution.abort(new WorkerShutdownError('the worker is shutting down; the run was handed back'))
    await Promise.all(
      remaining.map((execution) =>
        connection.send({ $case: 'releaseRun', releaseRun: { runId: execution.runId, leaseToken: execution.leaseToken } }),
      ),
    )
    clearInterval(this.heartbeatTimer)
    await connection.close()
    this.state = 'stopped'
  }

  private selectJobs(): Map<string, JobDefinition> {
    const all = this.internals.jobs
    const names = this.options.jobs ?? [...all.keys()]
    const jobs = new Map<string, JobDefinition>()
    for (const name of names) {
      const definition = all.get(name)
      if (!definition) throw new Error(`worker options.jobs names "${name}", which is not registered with stackshift.job()`)
      jobs.set(name, definition)
    }
    if (jobs.size === 0) throw new Error('no jobs to run: register handlers with stackshift.job() before starting a worker')
    return jobs
  }

  /** Runs the worker wants in hand now: running, ready, or promised by the server. */
  private capacity(): number {
    if (this.state !== 'running' && this.state !== 'starting') return 0
    return this.concurrency + (this.averageHandlerMs < shortHandlerMs ? this.prefetch : 0)
  }

  /** Free slots for a (re)connect's hello: the server forgets credits when a stream ends. */
  private announceSlots(): number {
    this.openCredits = Math.max(0, this.capacity() - this.busySlots - this.ready.length)
    return this.openCredits
  }

  /** Tells the server about slots that opened, keeping running + ready + promised at capacity. */
  private refill(): void {
    const missing = this.capacity() - this.busySlots - this.ready.length - this.openCredits
    if (missing <= 0 || !this.connection) return
    this.openCredits += missing
    this.connection.addSlots(missing)
  }

  private accept(tasks: Task[], jobs: ReadonlyMap<string, JobDefinition>): void {
    this.openCredits = Math.max(0, this.openCredits - tasks.length)
    for (const task of tasks) {
      if (this.state !== 'running' && this.state !== 'starting') {
        // Sent before the server saw our drain: hand it straight back.
        this.release(task)
        continue
      }
      if (!jobs.has(task.job)) {
        this.internals.logger.error('received a run of a job this worker does not have; handing it back', runLogFields(task))
        this.release(task)
        continue
      }
      this.ready.push(task)
    }
    this.startReady(jobs)
    this.refill()
  }

  private startReady(jobs: ReadonlyMap<string, JobDefinition>): void {
    while (this.busySlots < this.concurrency && this.ready.length > 0) {
      const task = this.ready.shift()!
      const execution = new Execution(task, jobs.get(task.job)!, this.executionDeps!)
      this.executions.add(execution)
      this.busySlots++
      execution.start()
    }
  }

  /** Shared by every execution of this worker: what an attempt calls back is told which attempt it is. */
  private createExecutionDeps(connection: WorkerConnection, jobs: ReadonlyMap<string, JobDefinition>): ExecutionDeps {
    const { sendEvent, runState, logger } = this.internals
    return {
      send: (body) => connection.send(body),
      sendEvent,
      runState,
      logger,
      // The slot frees when the handler returns, so the next run starts (and
      // more are claimed) while this one's outcome is still being committed.
      onHandlerSettled: (execution) => {
        this.busySlots--
        this.averageHandlerMs = this.averageHandlerMs * 0.9 + (performance.now() - execution.startedAt) * 0.1
        this.startReady(jobs)
        this.refill()
      },
      onDone: (execution, unexpected) => {
        if (unexpected !== undefined) {
          logger.error('run execution failed unexpectedly', { ...runLogFields(execution.task), error: inspect(unexpected) })
        }
        this.executions.delete(execution)
      },
    }
  }

  private release(task: Task): void {
    void this.connection?.send({ $case: 'releaseRun', releaseRun: { runId: task.runId, leaseToken: task.leaseToken } })
  }

  private revoke(revoked: RevokedLease[]): void {
    const byRun = new Map(revoked.map((lease) => [lease.runId, lease.reason]))
    const readyBefore = this.ready.length
    for (let i = this.ready.length - 1; i >= 0; i--) if (byRun.has(this.ready[i]!.runId)) this.ready.splice(i, 1)
    // Dropped runs were taking room the worker wants filled.
    if (this.ready.length < readyBefore) this.refill()
    for (const execution of this.executions.values()) {
      const reason = byRun.get(execution.runId)
      if (reason === undefined) continue
      execution.abort(
        reason === RevokeReason.REVOKE_REASON_CANCELLED
          ? new RunCancelledError(`run ${execution.runId} was cancelled`)
          : new LeaseLostError(`lease on run ${execution.runId} was lost`),
      )
    }
  }

  private startHeartbeats(intervalMs: number): void {
    clearInterval(this.heartbeatTimer)
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), Math.max(100, intervalMs))
  }

  private async heartbeat(): Promise<void> {
    const held = [
      ...[...this.executions.values()].filter((execution) => !execution.isAborted),
      ...this.ready.map((task) => ({ runId: task.runId, leaseToken: task.leaseToken })),
    ]
    // While disconnected, one heartbeat waits to be sent; there is no point queueing more.
    if (held.length === 0 || !this.connection || this.isHeartbeatPending) return
    this.isHeartbeatPending = true
    try {
      const answer = await this.connection.send({
        $case: 'heartbeat',
        heartbeat: { leases: held.map((lease) => ({ runId: lease.runId, leaseToken: lease.leaseToken })), leaseMs: 0 },
      })
      if (answer.result?.$case === 'heartbeat') this.revoke(answer.result.heartbeat.revoked)
    } finally {
      this.isHeartbeatPending = false
    }
  }
}
