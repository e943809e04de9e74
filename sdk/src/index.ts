/** @stackshift/sdk: the TypeScript client and worker for StackShift Durable Jobs. */
export { StackShift, type StackShiftOptions } from './client.js'
export { Queue, type EnqueueItem, type EnqueueOptions } from './queue.js'
export { Worker, type WorkerOptions } from './worker.js'
export type { JobContext, JobDefinition, JobHandler, RunInfo, StepTools } from './job.js'
export type { AttemptInfo, EnqueuedRun, Run, RunErrorInfo, RunStatus, StepInfo } from './types.js'
export type { Duration } from './duration.js'
export type { Logger } from './logger.js'
export {
  AbortedError,
  AlreadyExistsError,
  CancelledError,
  DataLossError,
  DeadlineExceededError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  LeaseLostError,
  NotFoundError,
  OutOfRangeError,
  PermissionDeniedError,
  ResourceExhaustedError,
  StackShiftError,
  UnauthenticatedError,
  UnavailableError,
  UnimplementedError,
  UnknownError,
  WaitForRunTimeoutError,
  WorkerShutdownError,
  errorFromStatus,
} from './errors.js'
export { NonRetriableError, RetryAfterError } from './handler-errors.js'
