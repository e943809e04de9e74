import { Metadata, type ServerErrorResponse, type StatusObject, status } from '@grpc/grpc-js'
import {
  DomainError,
  FailedPreconditionError,
  InvalidArgumentError,
  LeaseLostError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  UnauthenticatedError,
  UnavailableError,
} from '../core/errors.js'
import { isConflictError, isStatementTimeout, isUnavailableError } from '../db/errors.js'
import type { Logger } from '../logger.js'
import { decodeFailureOf } from './decode-errors.js'

/** A gRPC status code and the message sent with it. */
export interface RpcStatus {
  code: status
  message: string
}

/**
 * The one map from errors to gRPC status codes (CONVENTIONS.md §6). Domain
 * errors carry their own message; database races and outages become the
 * retryable ABORTED and UNAVAILABLE, and so does a statement PostgreSQL
 * cancelled for running past statement_timeout (UNAVAILABLE rather than
 * DEADLINE_EXCEEDED: the caller's deadline did not pass, nothing was stored,
 * and clients retry UNAVAILABLE as is); anything else is INTERNAL with a
 * generic message, and the full error goes to the log.
 */
export function toRpcStatus(error: unknown, logger: Logger): RpcStatus {
  if (error instanceof InvalidArgumentError) return { code: status.INVALID_ARGUMENT, message: error.message }
  if (error instanceof NotFoundError) return { code: status.NOT_FOUND, message: error.message }
  if (error instanceof LeaseLostError || error instanceof FailedPreconditionError)
    return { code: status.FAILED_PRECONDITION, message: error.message }
  if (error instanceof ResourceExhaustedError) return { code: status.RESOURCE_EXHAUSTED, message: error.message }
  if (error instanceof UnavailableError) return { code: status.UNAVAILABLE, message: error.message }
  if (error instanceof UnauthenticatedError) return { code: status.UNAUTHENTICATED, message: error.message }
  if (error instanceof PermissionDeniedError) return { code: status.PERMISSION_DENIED, message: error.message }
  if (isConflictError(error)) return { code: status.ABORTED, message: 'the operation conflicted with a concurrent one; retry it' }
  if (isStatementTimeout(error)) {
    logger.warn({ err: error }, 'database statement cancelled (statement timeout)')
    return { code: status.UNAVAILABLE, message: 'the database cancelled the statement: it ran longer than its timeout; retry later' }
  }
  if (isUnavailableError(error)) {
    logger.warn({ err: error }, 'database unavailable')
    return { code: status.UNAVAILABLE, message: 'the database is unavailable; retry later' }
  }
  if (!(error instanceof DomainError)) logger.error({ err: error }, 'internal error')
  return { code: status.INTERNAL, message: 'internal error' }
}

/** The error object grpc-js sends for a status. */
export function toServiceError(rpcStatus: RpcStatus): ServerErrorResponse & Partial<StatusObject> {
  return Object.assign(new Error(rpcStatus.message), { code: rpcStatus.code, details: rpcStatus.message, metadata: new Metadata() })
}

/**
 * Wraps an async unary handler: resolves become responses, throws go through
 * the error map, and a request that could not be decoded is refused before
 * the handler sees it. Handlers never build status errors themselves.
 */
export function unaryHandler<Request, Response>(
  logger: Logger,
  handle: (request: Request, signal: AbortSignal, metadata: Metadata) => Promise<Response>,
): (
  call: { request: Request; metadata: Metadata; on(event: 'cancelled', listener: () => void): unknown },
  callback: (error: ServerErrorResponse | null, response?: Response) => void,
) => void {
  return (call, callback) => {
    const decodeFailure = decodeFailureOf(call.request)
    if (decodeFailure) {
      callback(toServiceError(toRpcStatus(decodeFailure, logger)))
      return
    }
    const controller = new AbortController()
    // grpc-js reports 'cancelled' when a call's stream closes, answered or
    // not; aborting an answered call would only build an AbortError for nobody.
    let isAnswered = false
    call.on('cancelled', () => {
      if (!isAnswered) controller.abort()
    })
    handle(call.request, controller.signal, call.metadata)
      .finally(() => (isAnswered = true))
      .then(
        (response) => callback(null, response),
        (error: unknown) => callback(toServiceError(toRpcStatus(error, logger))),
      )
  }
}
