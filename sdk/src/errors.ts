import { status } from '@grpc/grpc-js'

/**
 * Base class of errors from the StackShift server. `code` is the gRPC status
 * code; each code has its own subclass, so callers can `instanceof` them.
 */
export class StackShiftError extends Error {
  override name = 'StackShiftError'
  /** gRPC status code (see @grpc/grpc-js `status`). */
  readonly code: status = status.UNKNOWN

  /** Whether the same call may simply be made again (ABORTED, UNAVAILABLE). */
  get isRetryable(): boolean {
    return this.code === status.UNAVAILABLE || this.code === status.ABORTED
  }
}

function statusError(code: status, name: string) {
  return class extends StackShiftError {
    override name = name
    override readonly code = code
  }
}

/** CANCELLED: the call was cancelled, usually by the caller. */
export class CancelledError extends statusError(status.CANCELLED, 'CancelledError') {}
/** UNKNOWN: the server or the transport reported an unknown error. */
export class UnknownError extends statusError(status.UNKNOWN, 'UnknownError') {}
/** INVALID_ARGUMENT: a request field is invalid; the message names it. */
export class InvalidArgumentError extends statusError(status.INVALID_ARGUMENT, 'InvalidArgumentError') {}
/** DEADLINE_EXCEEDED: the call's deadline passed. */
export class DeadlineExceededError extends statusError(status.DEADLINE_EXCEEDED, 'DeadlineExceededError') {}
/** NOT_FOUND: no such run (or other entity) in the namespace. */
export class NotFoundError extends statusError(status.NOT_FOUND, 'NotFoundError') {}
/** ALREADY_EXISTS. */
export class AlreadyExistsError extends statusError(status.ALREADY_EXISTS, 'AlreadyExistsError') {}
/** PERMISSION_DENIED: the credentials do not allow the call. */
export class PermissionDeniedError extends statusError(status.PERMISSION_DENIED, 'PermissionDeniedError') {}
/** RESOURCE_EXHAUSTED: a size or count limit was exceeded. */
export class ResourceExhaustedError extends statusError(status.RESOURCE_EXHAUSTED, 'ResourceExhaustedError') {}
/**
 * FAILED_PRECONDITION: the operation is not allowed in the current state —
 * for a worker, the lease is no longer held (see LeaseLostError).
 */
export class FailedPreconditionError extends statusError(status.FAILED_PRECONDITION, 'FailedPreconditionError') {}
/** ABORTED: the operation lost a race in the database; safe to retry. */
export class AbortedError extends statusError(status.ABORTED, 'AbortedError') {}
/** OUT_OF_RANGE. */
export class OutOfRangeError extends statusError(status.OUT_OF_RANGE, 'OutOfRangeError') {}
/** UNIMPLEMENTED: the server does not know this call (an older server). */
export class UnimplementedError extends statusError(status.UNIMPLEMENTED, 'UnimplementedError') {}
/** INTERNAL: the server failed; details are in its log. */
export class InternalError extends statusError(status.INTERNAL, 'InternalError') {}
/** UNAVAILABLE: the server or its database cannot be reached now; safe to retry. */
export class UnavailableError extends statusError(status.UNAVAILABLE, 'UnavailableError') {}
/** DATA_LOSS. */
export class DataLossError extends statusError(status.DATA_LOSS, 'DataLossError') {}
/** UNAUTHENTICATED: credentials are missing or wrong. */
export class UnauthenticatedError extends statusError(status.UNAUTHENTICATED, 'UnauthenticatedError') {}

const classByCode = new Map<number, new (message: string) => StackShiftError>([
  [status.CANCELLED, CancelledError],
  [status.UNKNOWN, UnknownError],
  [status.INVALID_ARGUMENT, InvalidArgumentError],
  [status.DEADLINE_EXCEEDED, DeadlineExceededError],
  [status.NOT_FOUND, NotFoundError],
  [status.ALREADY_EXISTS, AlreadyExistsError],
  [status.PERMISSION_DENIED, PermissionDeniedError],
  [status.RESOURCE_EXHAUSTED, ResourceExhaustedError],
  [status.FAILED_PRECONDITION, FailedPreconditionError],
  [status.ABORTED, AbortedError],
  [status.OUT_OF_RANGE, OutOfRangeError],
  [status.UNIMPLEMENTED, UnimplementedError],
  [status.INTERNAL, InternalError],
  [status.UNAVAILABLE, UnavailableError],
  [status.DATA_LOSS, DataLossError],
  [status.UNAUTHENTICATED, UnauthenticatedError],
])

/**
 * A status code as received in a message (a plain number on the wire: an
 * operation's result, a stream's answer) as grpc-js's enum; a code outside
 * the enum is UNKNOWN.
 */
export function statusOf(code: number): status {
  return statusByCode.get(code) ?? status.UNKNOWN
}

const statusByCode = new Map(
  Object.values(status)
    .filter((value): value is status => typeof value === 'number')
    .map((value) => [value as number, value]),
)

/** The typed error for a gRPC status code and message. */
export function errorFromStatus(code: number, message: string): StackShiftError {
  const ErrorClass = classByCode.get(code) ?? UnknownError
  return new ErrorClass(message)
}

/**
 * A worker wrote about a run whose lease it no longer holds (expired, taken
 * over, or the run ended). Nothing was stored. The handler's `signal` is
 * aborted with this error as its reason.
 */
export class LeaseLostError extends FailedPreconditionError {
  override name = 'LeaseLostError'
}

/** The run was cancelled (`cancelRun`) while its handler ran; the handler's `signal` carries it. */
export class RunCancelledError extends LeaseLostError {
  override name = 'RunCancelledError'
}

/** The worker is shutting down and handed the run back; the handler's `signal` carries it. */
export class WorkerShutdownError extends Error {
  override name = 'WorkerShutdownError'
}

/** waitForRun's timeout passed before the run finished. */
export class WaitForRunTimeoutError extends DeadlineExceededError {
  override name = 'WaitForRunTimeoutError'
}

/**
 * Thrown by `step.sleep`, `step.sleepUntil`, `step.waitForEvent` and
 * `step.invoke` when the run is suspended: the handler stops here and the run resumes later, from
 * the memo, on any worker. A handler that catches errors around those calls
 * must rethrow this one.
 */
export class RunSuspendedError extends Error {
  override name = 'RunSuspendedError'
}

/** How a child run ended for its parent, when it did not complete. */
export type ChildRunFailureStatus = 'failed' | 'cancelled' | 'timed_out'

/**
 * Thrown by `step.invoke` when the child run failed (after its last attempt),
 * was cancelled, or did not finish within the invoke's timeout (then a
 * ChildRunTimeoutError). A replay of the parent throws it again from the
 * memo, so a parent that lets it escape fails at once, without retries: each
 * would throw the same error.
 */
export class ChildRunFailedError extends Error {
  override name = 'ChildRunFailedError'
  /** Id of the child run. */
  readonly childRunId: string
  /** How the child ended, as far as the parent is concerned. */
  readonly status: ChildRunFailureStatus
  /** The child's error (its last attempt's, the cancel reason, or the timeout). */
  readonly childError: { name: string; message: string }

  constructor(params: { stepId: string; childRunId: string; status: ChildRunFailureStatus; error: { name: string; message: string } }) {
    const how = params.status === 'timed_out' ? 'did not finish in time' : params.status
    super(`child run ${params.childRunId} of step "${params.stepId}" ${how}: ${params.error.name}: ${params.error.message}`)
    this.childRunId = params.childRunId
    this.status = params.status
    this.childError = params.error
  }
}

/** `step.invoke`'s timeout passed before the child run finished; the child is cancelled. */
export class ChildRunTimeoutError extends ChildRunFailedError {
  override name = 'ChildRunTimeoutError'
}
