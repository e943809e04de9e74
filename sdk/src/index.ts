/** @stackshift/sdk: the TypeScript client and worker for StackShift Durable Jobs. */
export { StackShift, type StackShiftOptions } from './client.js'
export { AdminClient, type ApiKeyInfo, type ApiKeyScope, type CreateApiKeyOptions } from './admin.js'
export type {
  BulkAction,
  BulkActionKindName,
  BulkActionStart,
  ConnectedWorker,
  EventPage,
  ListedEvent,
  QueueStats,
  RunSelection,
} from './operator.js'
export { Schedules, type OverlapPolicy, type Schedule, type ScheduleOptions } from './schedules.js'
export type { TlsOptions } from './credentials.js'
export type { FlowWait, JobInfo, JobPolicies, QueueInfo, QueuePolicies } from './flow.js'
export { replaceAsyncResourceBind } from './tuning.js'
export { Queue, type EnqueueItem, type EnqueueOptions } from './queue.js'
export { Worker, type WorkerOptions } from './worker.js'
export type { EventToSend, InvokeOptions, JobContext, JobDefinition, JobHandler, RunInfo, StepTools, WaitForEventOptions } from './job.js'
export type {
  AttemptInfo,
  ChildRunInfo,
  EnqueuedRun,
  ListRunsOptions,
  ReceivedEvent,
  Run,
  RunErrorInfo,
  RunPage,
  RunStatus,
  SentEvent,
  StepInfo,
  StepKind,
} from './types.js'
export type { Duration } from './duration.js'
export { LockUnavailableError, type StateEntryInfo, type StateLock, type StateStore, type StateWriteOptions } from './state.js'
export { type Logger, jsonLogger } from './logger.js'
export {
  AbortedError,
  AlreadyExistsError,
  CancelledError,
  ChildRunFailedError,
  type ChildRunFailureStatus,
  ChildRunTimeoutError,
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
  RunCancelledError,
  RunSuspendedError,
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
