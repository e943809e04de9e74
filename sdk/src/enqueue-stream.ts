import { type ClientDuplexStream, type ServiceError, status } from '@grpc/grpc-js'
import type {
  EnqueueRequest,
  EnqueueResponse,
  EnqueueStreamRequest,
  EnqueueStreamResponse,
  RunServiceClient,
} from '@stackshift/proto/run-service'
import { DeadlineExceededError, errorFromStatus, statusOf } from './errors.js'
import { callUnary, toStackShiftError } from './grpc.js'

/**
 * An open call keeps the process alive; after this long with no enqueue
 * waiting for its answer the stream is half-closed, so an idle client holds
 * nothing open and a script that has enqueued can exit.
 */
const idleCloseMs = 1_000

/**
 * Requests with more text than this go by unary Enqueue: a message over the
 * server's size limit fails the whole call it travels on, with every other
 * enqueue on it, and beside a large payload the cost of a call is small. The
 * server's limit is at least 64 KiB; this many UTF-16 units encode to at most
 * 48 KiB.
 */
const maxStreamedChars = 16 * 1024

interface Pending {
  request: EnqueueRequest
  deadline: number
  resolve: (response: EnqueueResponse) => void
  reject: (error: Error) => void
  timer: NodeJS.Timeout
}

/**
 * Single enqueues over one EnqueueStream call, instead of a unary call each:
 * no new HTTP/2 stream, headers or trailers per run, on either side. Opened
 * by the first enqueue, half-closed when idle, reopened by the next.
 */
export class EnqueueStreamClient {
  private current: StreamCall | undefined
  /** False once the server answered UNIMPLEMENTED (it predates EnqueueStream): unary from then on. */
  private isStreamSupported = true

  constructor(private readonly client: RunServiceClient) {}

  enqueue(request: EnqueueRequest, timeoutMs: number): Promise<EnqueueResponse> {
    // A traced enqueue goes by unary call: gRPC instrumentation gives each call
    // its client and server spans, and the server's SQL spans nest under them;
    // on a shared stream they would all hang off the stream's one span.
    const isTraced = Object.keys(request.run!.traceContext).length > 0
    if (!this.isStreamSupported || isTraced || textLength(request) > maxStreamedChars) return this.unary(request, timeoutMs)
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + timeoutMs
      this.send({ request, deadline, resolve, reject, timer: undefined! })
    })
  }

  /** Half-closes the stream; enqueues already sent still get their answers. */
  close(): void {
    this.current?.halfClose()
    this.current = undefined
  }

  private send(pending: Pending): void {
    if (!this.current?.isWritable) {
      this.current = new StreamCall(this.client.enqueueStream(), (unanswered, error) => this.ended(unanswered, error))
    }
    this.current.send(pending)
  }

  /**
   * The stream ended. With OK or UNIMPLEMENTED the server stored none of the
   * unanswered requests: they are sent again. On any other failure whether
   * they were stored is unknown, as with a unary call that fails mid-way.
   */
  private ended(unanswered: Pending[], error: ServiceError | undefined): void {
    if (error?.code === status.UNIMPLEMENTED) this.isStreamSupported = false
    for (const pending of unanswered) {
      if (error && error.code !== status.UNIMPLEMENTED) pending.reject(toStackShiftError(error))
      else if (this.isStreamSupported) this.send(pending)
      else this.unary(pending.request, Math.max(0, pending.deadline - Date.now())).then(pending.resolve, pending.reject)
    }
  }

  private unary(request: EnqueueRequest, timeoutMs: number): Promise<EnqueueResponse> {
    return callUnary(this.client.enqueue.bind(this.client), request, timeoutMs)
  }
}

/** One EnqueueStream call and the requests waiting on it. */
class StreamCall {
  isWritable = true
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private idleTimer: NodeJS.Timeout | undefined

  constructor(
    private readonly call: ClientDuplexStream<EnqueueStreamRequest, EnqueueStreamResponse>,
    private readonly onEnded: (unanswered: Pending[], error: ServiceError | undefined) => void,
  ) {
    call.on('data', (response: EnqueueStreamResponse) => this.receive(response))
    call.on('error', (error: ServiceError) => this.end(error))
    call.on('status', (callStatus: { code: status }) => {
      if (callStatus.code === status.OK) this.end(undefined)
    })
  }

  send(pending: Pending): void {
    clearTimeout(this.idleTimer)
    const id = this.nextId++
    pending.timer = setTimeout(
      () => {
        this.settle(id)
        pending.reject(new DeadlineExceededError('enqueue got no answer before its deadline; the run may or may not be stored'))
      },
      Math.max(0, pending.deadline - Date.now()),
    )
    this.pending.set(id, pending)
    this.call.write({ id, enqueue: pending.request })
  }

  halfClose(): void {
    if (!this.isWritable) return
    this.isWritable = false
    clearTimeout(this.idleTimer)
    this.call.end()
  }

  private receive(response: EnqueueStreamResponse): void {
    const pending = this.settle(response.id)
    if (!pending) return
    if (statusOf(response.code) === status.OK) pending.resolve(response.enqueue!)
    else pending.reject(errorFromStatus(response.code, response.message))
  }

  /** Forgets a request (answered or timed out); the stream half-closes once none has been waiting for a while. */
  private settle(id: number): Pending | undefined {
    const pending = this.pending.get(id)
    if (!pending) return undefined
    clearTimeout(pending.timer)
    this.pending.delete(id)
    if (this.pending.size === 0 && this.isWritable) {
      this.idleTimer = setTimeout(() => this.halfClose(), idleCloseMs)
      this.idleTimer.unref()
    }
    return pending
  }

  private end(error: ServiceError | undefined): void {
    this.isWritable = false
    clearTimeout(this.idleTimer)
    const unanswered = [...this.pending.values()]
    for (const pending of unanswered) clearTimeout(pending.timer)
    this.pending.clear()
    if (unanswered.length > 0) this.onEnded(unanswered, error)
  }
}

/** Characters of text in a request: what its encoded size grows with. */
function textLength(request: EnqueueRequest): number {
  const run = request.run!
  let length = run.payloadJson.length + run.idempotencyKey.length + run.queue.length + run.job.length + request.namespace.length
  for (const key in run.traceContext) length += key.length + run.traceContext[key]!.length
  return length
}
