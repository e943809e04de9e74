import { type ServerDuplexStream, status } from '@grpc/grpc-js'
import type { EnqueueStreamRequest, EnqueueStreamResponse } from '@stackshift/proto/run-service'
import type { ServerConfig } from '../config.js'
import { InvalidArgumentError } from '../core/errors.js'
import type { Logger } from '../logger.js'
import type { RunEnqueuer } from '../operations/enqueue.js'
import { decodeFailureOf } from './decode-errors.js'
import { type RpcStatus, toRpcStatus, toServiceError } from './error-map.js'
import { parseEnqueue } from './run-requests.js'

export interface EnqueueStreamDeps {
  config: ServerConfig
  logger: Logger
  enqueuer: RunEnqueuer
  onClosed: (stream: EnqueueStream) => void
}

/**
 * One client's EnqueueStream: every request is an Enqueue, answered under its
 * id as soon as its run is stored (or refused). The stream ends with OK only
 * once every request received has its answer, so a request left unanswered
 * at an OK end was never stored. A request the server cannot decode (its id
 * may be what is wrong) ends the stream with INVALID_ARGUMENT instead, once
 * the requests before it are answered; requests after it are not read.
 */
export class EnqueueStream {
  private state: 'open' | 'ending' | 'closed' = 'open'
  private failure: RpcStatus | undefined
  private unanswered = 0
  private readonly logger: Logger

  constructor(
    private readonly call: ServerDuplexStream<EnqueueStreamRequest, EnqueueStreamResponse>,
    private readonly deps: EnqueueStreamDeps,
  ) {
    this.logger = deps.logger.child({ peer: call.getPeer() })
    call.on('data', (request: EnqueueStreamRequest) => this.receive(request))
    call.on('end', () => this.end())
    call.on('cancelled', () => this.close())
    call.on('error', () => this.close())
  }

  /** Server shutdown: answer what was received, refuse what comes after, then end the stream. */
  end(): void {
    if (this.state !== 'open') return
    this.state = 'ending'
    this.endIfAnswered()
  }

  private receive(request: EnqueueStreamRequest): void {
    if (this.state === 'closed' || this.failure) return
    const decodeFailure = decodeFailureOf(request)
    if (decodeFailure) {
      this.failure = toRpcStatus(decodeFailure, this.logger)
      this.state = 'ending'
      this.endIfAnswered()
      return
    }
    if (this.state === 'ending') {
      this.answer({
        id: request.id,
        code: status.UNAVAILABLE,
        message: 'the server is shutting down; nothing was stored',
        enqueue: undefined,
      })
      return
    }
    this.unanswered++
    void this.enqueue(request).then((response) => {
      this.unanswered--
      this.answer(response)
      this.endIfAnswered()
    })
  }

  private async enqueue(request: EnqueueStreamRequest): Promise<EnqueueStreamResponse> {
    try {
      if (!request.enqueue) throw new InvalidArgumentError('enqueue', 'is required')
      const { namespace, run } = parseEnqueue(request.enqueue, this.deps.config)
      const outcome = await this.deps.enqueuer.enqueue(namespace, run)
      return { id: request.id, code: status.OK, message: '', enqueue: { runId: outcome.runId, deduplicated: outcome.isDeduplicated } }
    } catch (error) {
      const { code, message } = toRpcStatus(error, this.logger)
      return { id: request.id, code, message, enqueue: undefined }
    }
  }

  private answer(response: EnqueueStreamResponse): void {
    if (this.state !== 'closed') this.call.write(response)
  }

  private endIfAnswered(): void {
    if (this.state !== 'ending' || this.unanswered > 0) return
    this.close()
    if (this.failure) this.call.emit('error', toServiceError(this.failure))
    else this.call.end()
  }

  private close(): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    this.deps.onClosed(this)
  }
}
