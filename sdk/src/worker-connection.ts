import { type ClientDuplexStream, Metadata, type ServiceError, status } from '@grpc/grpc-js'
import type {
  ConnectRequest,
  ConnectResponse,
  OperationResult,
  RevokedLease,
  Task,
  WorkerHello,
  WorkerOperation,
  WorkerServiceClient,
  WorkerWelcome,
} from '@stackshift/proto/worker-service'
import { type StackShiftError } from './errors.js'
import { toStackShiftError } from './grpc.js'
import type { Logger } from './logger.js'

/** One write about a leased run. */
export type OperationBody = NonNullable<WorkerOperation['operation']>

// Hello rejected for a reason that reconnecting will not fix.
const fatalCodes = new Set<number>([status.INVALID_ARGUMENT, status.UNIMPLEMENTED, status.PERMISSION_DENIED, status.UNAUTHENTICATED])
const closeTimeoutMs = 5000
/**
 * Answers that say the write was not made and may be made again: the
 * server could not reach its database (UNAVAILABLE), or the write lost a race
 * in it (ABORTED). Such a write is sent again, with backoff, until the server
 * answers otherwise: once the database is back, a write whose lease still
 * holds is stored, and one whose lease ran out meanwhile is refused
 * (FAILED_PRECONDITION). So an outage shorter than a lease costs no attempt.
 */
const retryableCodes = new Set<number>([status.UNAVAILABLE, status.ABORTED])
const retryDelayMaxMs = 2000

/**
 * The worker's Connect stream, kept open across server restarts. Outgoing
 * operations and freed slots are gathered per event-loop turn into one
 * message. Every operation is kept until the server answers it; after a
 * reconnect, unanswered ones are sent again (the server treats repeats of the
 * same write under the same lease as the same write), and so are writes the
 * server answered as retryable (see retryableCodes).
 */
export class WorkerConnection {
  private stream: ClientDuplexStream<ConnectRequest, ConnectResponse> | undefined
  private state: 'idle' | 'connecting' | 'open' | 'closed' = 'idle'
  private nextOperationId = 1
  private readonly pending = new Map<number, { body: OperationBody; resolve: (result: OperationResult) => void; retries: number }>()
  private unsent: number[] = []
  private addedSlots = 0
  private isDraining = false
  private isDrainSent = false
  /** The server answered the drain: no task follows on this stream. */
  private isDrained = false
  private isFlushScheduled = false
  private reconnectDelayMs = 0
  private reconnectTimer: NodeJS.Timeout | undefined

  constructor(
    private readonly deps: {
      client: WorkerServiceClient
      /** Built at every (re)connect: `slots` must be the free slots at that moment. */
      hello: () => WorkerHello
      onWelcome: (welcome: WorkerWelcome) => void
      onTasks: (tasks: Task[]) => void
      onRevoked: (revoked: RevokedLease[]) => void
      /** The server refused the worker in a way reconnecting cannot fix. */
      onFatal: (error: StackShiftError) => void
      logger: Logger
    },
  ) {}

  connect(): void {
    if (this.state === 'closed') return
    // waitForReady: while the server is away, the stream waits for the channel to reach it (gRPC retries
    // with its backoff, capped in grpc.ts) instead of failing at once, so the worker is back as soon as
    // the server is, not at its next try.
    const stream = this.deps.client.connect(new Metadata({ waitForReady: true }))
    this.stream = stream
    this.state = 'connecting'
    this.addedSlots = 0
    stream.on('data', (message: ConnectResponse) => this.receive(stream, message))
    stream.on('error', (error: ServiceError) => this.lost(stream, error))
    stream.on('end', () => this.lost(stream, undefined))
    stream.write({ hello: this.deps.hello(), addedSlots: 0, operations: [], drain: false })
  }

  /** Sends an operation; resolves with the server's answer (never rejects). */
  send(body: OperationBody): Promise<OperationResult> {
    if (this.state === 'closed') {
      return Promise.resolve({ id: 0, code: status.UNAVAILABLE, message: 'the worker is stopped', result: undefined })
    }
    return new Promise((resolve) => {
      const id = this.nextOperationId++
      this.pending.set(id, { body, resolve, retries: 0 })
      this.unsent.push(id)
      this.scheduleFlush()
    })
  }

  /** Reports slots that became free. */
  addSlots(count: number): void {
    this.addedSlots += count
    this.scheduleFlush()
  }

  /** Asks the server to stop sending tasks. */
  drain(): void {
    this.isDraining = true
    this.scheduleFlush()
  }

  /**
   * Waits (briefly) until the server has answered the drain, if one was asked
   * (tasks it sent before are handed back meanwhile), and every pending
   * operation; then ends the stream.
   */
  async close(): Promise<void> {
    const deadline = Date.now() + closeTimeoutMs
    const isSettled = () => this.pending.size === 0 && (!this.isDraining || this.isDrained)
    while (!isSettled() && Date.now() < deadline && this.state !== 'closed') {
      await new Promise((done) => setTimeout(done, 10))
    }
    const wasOpen = this.state === 'open'
    this.state = 'closed'
    clearTimeout(this.reconnectTimer)
    for (const [id, entry] of this.pending)
      entry.resolve({ id, code: status.UNAVAILABLE, message: 'the worker stopped before the server answered', result: undefined })
    this.pending.clear()
    // A stream still waiting for the server would otherwise reach it later, hello and all.
    if (wasOpen) this.stream?.end()
    else this.stream?.cancel()
    this.stream = undefined
  }

  private receive(stream: ClientDuplexStream<ConnectRequest, ConnectResponse>, message: ConnectResponse): void {
    if (stream !== this.stream) return
    if (message.welcome) {
      this.state = 'open'
      this.reconnectDelayMs = 0
      this.unsent = [...this.pending.keys()]
      this.isDrainSent = false
      this.isDrained = false
      this.deps.onWelcome(message.welcome)
      this.scheduleFlush()
    }
    if (message.tasks.length > 0) this.deps.onTasks(message.tasks)
    for (const result of message.results) {
      const entry = this.pending.get(result.id)
      if (!entry) continue
      if (retryableCodes.has(result.code)) {
        this.sendAgainLater(result.id, entry, result.message)
        continue
      }
      this.pending.delete(result.id)
      entry.resolve(result)
    }
    if (message.revoked.length > 0) this.deps.onRevoked(message.revoked)
    if (message.drained) this.isDrained = true
  }

  private lost(stream: ClientDuplexStream<ConnectRequest, ConnectResponse>, error: ServiceError | undefined): void {
    if (stream !== this.stream) return
    this.stream = undefined
    if (this.state === 'closed') return
    const wasConnecting = this.state === 'connecting'
    this.state = 'idle'
    if (error && wasConnecting && fatalCodes.has(error.code)) {
      this.state = 'closed'
      this.deps.onFatal(toStackShiftError(error))
      return
    }
    this.reconnectDelayMs = Math.min(5000, Math.max(100, this.reconnectDelayMs * 2))
    const delayMs = Math.round(this.reconnectDelayMs * (0.5 + Math.random() / 2))
    this.deps.logger.warn('worker stream lost; reconnecting', { reason: error?.details ?? 'stream ended', inMs: delayMs })
    this.reconnectTimer = setTimeout(() => this.connect(), delayMs)
  }

  /** Sends a write again after a backoff (doubling, with jitter, up to retryDelayMaxMs). */
  private sendAgainLater(id: number, entry: { retries: number }, reason: string): void {
    entry.retries++
    if (entry.retries === 1) this.deps.logger.warn('a write was not stored; sending it again', { reason })
    const delayMs = Math.min(retryDelayMaxMs, 50 * 2 ** entry.retries) * (0.5 + Math.random() / 2)
    setTimeout(() => {
      if (!this.pending.has(id) || this.state === 'closed') return
      this.unsent.push(id)
      this.scheduleFlush()
    }, delayMs).unref()
  }

  private scheduleFlush(): void {
    if (this.isFlushScheduled) return
    this.isFlushScheduled = true
    setImmediate(() => this.flush())
  }

  private flush(): void {
    this.isFlushScheduled = false
    if (this.state !== 'open' || !this.stream) return
    const operations: WorkerOperation[] = []
    // A write can be queued twice: sent again after a retryable answer, and again by a reconnect.
    for (const id of new Set(this.unsent)) {
      const entry = this.pending.get(id)
      if (entry) operations.push({ id, operation: entry.body })
    }
    this.unsent = []
    const drain = this.isDraining && !this.isDrainSent
    if (operations.length === 0 && this.addedSlots === 0 && !drain) return
    this.stream.write({ hello: undefined, addedSlots: this.addedSlots, operations, drain })
    this.addedSlots = 0
    if (drain) this.isDrainSent = true
  }
}
