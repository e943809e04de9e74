import { status } from '@grpc/grpc-js'
import { expect, it } from 'vitest'
import * as sdk from '@stackshift/sdk'

it('every gRPC status code maps to its own typed error class', () => {
  const expected: Array<[status, new (message: string) => sdk.StackShiftError]> = [
    [status.CANCELLED, sdk.CancelledError],
    [status.UNKNOWN, sdk.UnknownError],
    [status.INVALID_ARGUMENT, sdk.InvalidArgumentError],
    [status.DEADLINE_EXCEEDED, sdk.DeadlineExceededError],
    [status.NOT_FOUND, sdk.NotFoundError],
    [status.ALREADY_EXISTS, sdk.AlreadyExistsError],
    [status.PERMISSION_DENIED, sdk.PermissionDeniedError],
    [status.RESOURCE_EXHAUSTED, sdk.ResourceExhaustedError],
    [status.FAILED_PRECONDITION, sdk.FailedPreconditionError],
    [status.ABORTED, sdk.AbortedError],
    [status.OUT_OF_RANGE, sdk.OutOfRangeError],
    [status.UNIMPLEMENTED, sdk.UnimplementedError],
    [status.INTERNAL, sdk.InternalError],
    [status.UNAVAILABLE, sdk.UnavailableError],
    [status.DATA_LOSS, sdk.DataLossError],
    [status.UNAUTHENTICATED, sdk.UnauthenticatedError],
  ]
  for (const [code, ErrorClass] of expected) {
    const error = sdk.errorFromStatus(code, `status ${code}`)
    expect(error).toBeInstanceOf(ErrorClass)
    expect(error).toBeInstanceOf(sdk.StackShiftError)
    expect(error.code).toBe(code)
    expect(error.message).toBe(`status ${code}`)
    expect(error.isRetryable).toBe(code === status.UNAVAILABLE || code === status.ABORTED)
  }
  expect(new Set(expected.map(([, ErrorClass]) => ErrorClass)).size).toBe(expected.length)
})

it('a lease lost is a FAILED_PRECONDITION error, and a wait timeout a DEADLINE_EXCEEDED one', () => {
  expect(new sdk.LeaseLostError('x')).toBeInstanceOf(sdk.FailedPreconditionError)
  expect(new sdk.WaitForRunTimeoutError('x')).toBeInstanceOf(sdk.DeadlineExceededError)
  expect(new sdk.RetryAfterError('slow down', '2s').retryAfterMs).toBe(2000)
})
