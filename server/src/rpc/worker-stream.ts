import { randomBytes } from 'node:crypto'
import { type ServerDuplexStream, status } from '@grpc/grpc-js'
import type { ServerConfig } from '../config.js'
import { InvalidArgumentError, ResourceExhaustedError } from '../core/errors.js'
import { limits } from '../core/limits.js'
import type { ClaimedRun } from '../core/run.js'
import type { Dispatcher, Subscription, TaskConsumer } from '../dispatch/dispatcher.js'
import type { Logger } from '../logger.js'
import type { FlowPolicies } from '../operations/flow-policies.js'
import type { LeaseWrites, RevokedLease as DomainRevokedLease } from '../operations/lease-writes.js'
import type { Suspensions } from '../operations/waits.js'
import type {
  ConnectRequest,
  ConnectResponse,
  OperationResult,
  RevokedLease,
  Task,
  WorkerOperation,
} from '@stackshift/proto/worker-service'
import { toFailRunResponse, toRevokedLease, toSuspendRunResponse, toTaskMessage } from './convert.js'
import { decodeFailureOf } from './decode-errors.js'
import { type RpcStatus, toRpcStatus, toServiceError } from './error-map.js'
import {
  parseCompleteRun,
  parseCompleteStep,
  parseFailRun,
  parseHeartbeat,
  parseReleaseRun,
  parseSuspendRun,
  parseWorkerHello,
} from './worker-requests.js'
import { parseJobPolicyDeclarations } from './job-requests.js'
import type { JobPolicies } from '../core/flow-policy.js'

export interface WorkerStreamDeps {
  config: ServerConfig
  logger: Logger
  dispatcher: Dispatcher
  leaseWrites: LeaseWrites
  suspensions: Suspensions
  policies: FlowPolicies
  onClosed: (stream: WorkerStream) => void
}

/** Server-chosen worker name, for a worker that did not name itself. */
export function generateWorkerId(): string {
  return `worker-${randomBytes(6).toString('hex')}`
}

/**
 * One worker's Connect stream. Until `hello` it is unidentified; then it
 * subscribes to the dispatcher as a consumer with the worker's free slots, and
 * receives tasks as those slots allow. Operations are handed to the group
 * commits and answered individually. Results produced in the same event-loop
 * turn leave in one message; tasks leave as soon as they are claimed.
 *
 * What one stream may make the server hold is bounded: at most
 * `limits.slotsMax` free slots (an `added_slots` beyond it ends the stream
 * with RESOURCE_EXHAUSTED), at most `limits.operationsInFlightMax` operations
 * unanswered (one beyond is refused alone), and nothing more while its writes
 * are not drained: when `call.write()` returns false (the worker is not
 * reading, or cannot keep up), the stream takes no tasks (its free slots read
 * as 0) and reads no requests until 'drain'; then it pumps again. Runs a
 * worker that stopped reading still holds go back when their leases expire.
 */
export class WorkerStream implements TaskConsumer {
  namespace = ''
  queues: string[] = []
  jobs: string[] = []
  leaseMs = 0
  workerId = ''
  /** The worker's SDK, as its hello said. */
  sdk = ''
  /** When the hello was accepted. */
  connectedAt: Date | undefined
  /** Identifies this stream on this server (a worker may open several). */
  readonly streamId = randomBytes(8).toString('hex')
  readonly claimMax = limits.streamClaimMax
  private slots = 0
  private state: 'awaiting-hello' | 'open' | 'draining' | 'closed' = 'awaiting-hello'
  private subscription: Subscription | undefined
  private outbox = emptyOutbox()
  /** Operations received and not yet answered; after a half-close, the end waits for them. */
  private unanswered = 0
  private onAllAnswered: (() => void) | undefined
  private isFlushScheduled = false
  /** A write returned false: until 'drain', no tasks are taken and no requests read. */
  private isWaitingForDrain = false
  private readonly logger: Logger

  constructor(
    private readonly call: ServerDuplexStream<ConnectRequest, ConnectResponse>,
    private readonly deps: WorkerStreamDeps,
  ) {
    this.logger = deps.logger.child({ peer: call.getPeer() })
    call.on('data', (message: ConnectRequest) => this.receive(message))
    call.on('end', () => void this.endAfterHalfClose())
    call.on('cancelled', () => this.close())
    call.on('error', () => this.close())
  }

  freeSlots(): number {
    return this.state === 'open' && !this.isWaitingForDrain ? this.slots : 0
  }

  deliver(runs: ClaimedRun[]): boolean {
    if (this.state !== 'open') return false
    this.slots -= runs.length
    this.outbox.runs.push(...runs)
    // A worker waits for these: they leave now, not at the end of the turn
    // (with whatever results are ready). One claim is one call here, so this
    // costs no extra messages under load.
    this.flush()
    return true
  }

  /**
   * Tells the worker to stop working on runs (cancelled ones). Sent to every
   * stream of the runs' namespace, and to no other: a worker ignores runs it
   * does not hold.
   */
  revoke(leases: readonly DomainRevokedLease[]): void {
    if (this.state === 'closed' || this.state === 'awaiting-hello') return
    this.outbox.revoked.push(...leases.map(toRevokedLease))
    this.scheduleFlush()
  }

  /** Ends the stream with a status (UNAVAILABLE on shutdown: the worker reconnects elsewhere). */
  terminate(rpcStatus: RpcStatus): void {
    if (this.state === 'closed') return
    this.flush()
    this.close()
    this.call.emit('error', toServiceError(rpcStatus))
  }

  private receive(message: ConnectRequest): void {
    try {
      // Its operations cannot be answered under their ids: the stream ends.
      const decodeFailure = decodeFailureOf(message)
      if (decodeFailure) throw decodeFailure
      if (this.state === 'awaiting-hello') this.open(message)
      else if (message.hello) throw new InvalidArgumentError('hello', 'is only allowed on the first message of the stream')
      if (this.state !== 'closed' && message.addedSlots > 0) this.addSlots(message.addedSlots)
    } catch (error) {
      this.terminate(toRpcStatus(error, this.logger))
      return
    }
    if (this.state === 'closed') return
    for (const operation of message.operations) {
      if (this.unanswered >= limits.operationsInFlightMax) {
        this.outbox.results.push(refusedOperation(operation.id))
        this.scheduleFlush()
        continue
      }
      this.unanswered++
      void this.perform(operation).then((result) => {
        this.outbox.results.push(result)
        this.scheduleFlush()
        if (--this.unanswered === 0) this.onAllAnswered?.()
      })
    }
    if (message.drain && this.state === 'open') {
      this.stopTakingTasks()
      // Tasks already delivered leave with this answer or before it; none after.
      this.outbox.drained = true
      this.scheduleFlush()
    }
  }

  /** Slots the worker freed; more than `limits.slotsMax` free at once ends the stream. */
  private addSlots(added: number): void {
    const slots = this.slots + added
    if (slots > limits.slotsMax) {
      throw new ResourceExhaustedError(
        'added_slots',
        `would make ${slots} slots free on this stream (hello.slots and every added_slots, less the tasks sent); at most ${limits.slotsMax} may be`,
      )
    }
    this.slots = slots
    this.subscription?.pump()
  }

  private stopTakingTasks(): void {
    this.state = 'draining'
    this.subscription?.close()
    this.subscription = undefined
  }

  /** The worker will send nothing more: answer what it sent, then end the stream. */
  private async endAfterHalfClose(): Promise<void> {
    if (this.state === 'open') this.stopTakingTasks()
    if (this.unanswered > 0) await new Promise<void>((resolve) => (this.onAllAnswered = resolve))
    this.flush()
    this.close()
    this.call.end()
  }

  private open(message: ConnectRequest): void {
    if (!message.hello) throw new InvalidArgumentError('hello', 'is required on the first message of the stream')
    const hello = parseWorkerHello(message.hello, this.deps.config, generateWorkerId)
    const declaredPolicies = parseJobPolicyDeclarations(message.hello.jobPolicies, hello.jobs)
    Object.assign(this, {
      namespace: hello.namespace,
      queues: hello.queues,
      jobs: hello.jobs,
      leaseMs: hello.leaseMs,
      workerId: hello.workerId,
      sdk: hello.sdk,
      connectedAt: new Date(),
    })
    this.slots = hello.slots
    this.state = 'open'
    const welcome = () => {
      this.write({
        drained: false,
        welcome: {
          workerId: hello.workerId,
          leaseMs: hello.leaseMs,
          heartbeatIntervalMs: Math.floor(hello.leaseMs / 3),
          maxPayloadBytes: this.deps.config.maxPayloadBytes,
        },
        tasks: [],
        results: [],
        revoked: [],
      })
      this.logger.info(
        { workerId: hello.workerId, namespace: hello.namespace, queues: hello.queues, slots: hello.slots, sdk: hello.sdk },
        'worker connected',
      )
      this.subscription = this.deps.dispatcher.subscribe(this)
    }
    if (declaredPolicies.size === 0) {
      welcome()
      return
    }
    // The policies are stored before the welcome: once a worker has started, its claims and
    // whatever is enqueued after (on this server) are under them.
    void this.declare(declaredPolicies).then(
      () => {
        if (this.state === 'open') welcome()
      },
      (error: unknown) => this.terminate(toRpcStatus(error, this.logger)),
    )
  }

  /** Stores the job policies the hello declared (as ConfigureJob would). */
  private async declare(declared: ReadonlyMap<string, JobPolicies>): Promise<void> {
    for (const [job, policies] of declared) await this.deps.policies.configureJob(this.namespace, job, policies)
  }

  private async perform(operation: WorkerOperation): Promise<OperationResult> {
    const { config, leaseWrites } = this.deps
    const ok = { id: operation.id, code: status.OK, message: '' }
    try {
      const op = operation.operation
      switch (op?.$case) {
        case 'completeStep':
          await leaseWrites.completeStep({ ...parseCompleteStep(op.completeStep, config, 'complete_step'), namespace: this.namespace })
          return { ...ok, result: { $case: 'completeStep', completeStep: {} } }
        case 'completeRun':
          await leaseWrites.completeRun({ ...parseCompleteRun(op.completeRun, config, 'complete_run'), namespace: this.namespace })
          return { ...ok, result: { $case: 'completeRun', completeRun: {} } }
        case 'failRun': {
          const outcome = await leaseWrites.failRun({ ...parseFailRun(op.failRun, 'fail_run'), namespace: this.namespace })
          return { ...ok, result: { $case: 'failRun', failRun: toFailRunResponse(outcome) } }
        }
        case 'releaseRun':
          await leaseWrites.releaseRun({ ...parseReleaseRun(op.releaseRun, 'release_run'), namespace: this.namespace })
          return { ...ok, result: { $case: 'releaseRun', releaseRun: {} } }
        case 'suspendRun': {
          const outcome = await this.deps.suspensions.suspend({
            ...parseSuspendRun(op.suspendRun, config, 'suspend_run'),
            namespace: this.namespace,
          })
          return { ...ok, result: { $case: 'suspendRun', suspendRun: toSuspendRunResponse(outcome) } }
        }
        case 'heartbeat': {
          const { leases, leaseMs } = parseHeartbeat(op.heartbeat, this.leaseMs, 'heartbeat')
          const revoked = await leaseWrites.heartbeat(
            leases.map((lease) => ({ ...lease, namespace: this.namespace })),
            leaseMs,
          )
          return { ...ok, result: { $case: 'heartbeat', heartbeat: { revoked: revoked.map(toRevokedLease) } } }
        }
        default:
          throw new InvalidArgumentError('operation', 'exactly one operation must be set')
      }
    } catch (error) {
      const { code, message } = toRpcStatus(error, this.logger)
      return { id: operation.id, code, message, result: undefined }
    }
  }

  private scheduleFlush(): void {
    if (this.isFlushScheduled) return
    this.isFlushScheduled = true
    setImmediate(() => this.flush())
  }

  private flush(): void {
    this.isFlushScheduled = false
    const { runs, results, revoked, drained } = this.outbox
    if (this.state === 'closed' || (runs.length + results.length + revoked.length === 0 && !drained)) return
    this.outbox = emptyOutbox()
    const batches = batchBySize(runs.map((run) => toTaskMessage(run, this.leaseMs)))
    batches.forEach((tasks, index) => {
      const isFirst = index === 0
      const isLast = index === batches.length - 1
      if (tasks.length === 0 && !(isFirst && results.length + revoked.length > 0) && !(isLast && drained)) return
      this.write({
        welcome: undefined,
        tasks,
        results: isFirst ? results : [],
        revoked: isFirst ? revoked : [],
        // After the last task: no task follows a drained.
        drained: isLast && drained,
      })
    })
  }

  /**
   * Writes a message. When the write is not drained at once (false), the
   * stream stops taking tasks and reading requests until it is: a worker that
   * does not read gets nothing more, and cannot make the server buffer
   * answers to requests it keeps sending.
   */
  private write(message: ConnectResponse): void {
    if (this.call.write(message) || this.isWaitingForDrain) return
    this.isWaitingForDrain = true
    this.call.pause()
    this.call.once('drain', () => {
      this.isWaitingForDrain = false
      if (this.state === 'closed') return
      this.call.resume()
      this.subscription?.pump()
    })
  }

  private close(): void {
    if (this.state === 'closed') return
    if (this.state !== 'awaiting-hello') this.logger.info({ workerId: this.workerId }, 'worker disconnected')
    this.state = 'closed'
    this.subscription?.close()
    this.subscription = undefined
    this.deps.onClosed(this)
  }
}

/** The answer to an operation beyond `limits.operationsInFlightMax`: refused, not performed. */
function refusedOperation(id: number): OperationResult {
  return {
    id,
    code: status.RESOURCE_EXHAUSTED,
    message: `operations: ${limits.operationsInFlightMax} operations of this stream are unanswered, the most there may be; send it again once answers arrive`,
    result: undefined,
  }
}

/** What leaves in the next message. */
function emptyOutbox(): { runs: ClaimedRun[]; results: OperationResult[]; revoked: RevokedLease[]; drained: boolean } {
  return { runs: [], results: [], revoked: [], drained: false }
}

/**
 * Tasks in order, split so each group stays under `limits.taskBytesPerMessage`
 * of payloads and memos; always at least one (maybe empty) group. A larger
 * task goes alone, and never in the first group, which leaves with the
 * results and revocations: alone, a task of up to the server's message limit
 * fits (RunClaims fails larger ones before they get here).
 */
function batchBySize(tasks: Task[]): Task[][] {
  const batches: Task[][] = [[]]
  let bytes = 0
  for (const task of tasks) {
    let size = Buffer.byteLength(task.payloadJson)
    for (const step of task.steps) size += step.resultJson === undefined ? 0 : Buffer.byteLength(step.resultJson)
    const isAlone = size > limits.taskBytesPerMessage
    if ((bytes + size > limits.taskBytesPerMessage && batches.at(-1)!.length > 0) || (isAlone && batches.length === 1)) {
      batches.push([])
      bytes = 0
    }
    batches.at(-1)!.push(task)
    bytes += size
  }
  return batches
}
