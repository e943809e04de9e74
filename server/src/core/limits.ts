import { protocolLimits } from '@stackshift/proto/limits'

/**
 * Limits on names and sizes accepted from clients. One place, so the protocol
 * documentation, validation and tests agree. Those that clients plan around
 * too are defined once with the protocol (`@stackshift/proto/limits`) and
 * re-used here.
 */
export const limits = {
  namespaceMaxLength: 100,
  queueMaxLength: 200,
  jobMaxLength: 200,
  stepIdMaxLength: 500,
  /** Longest step duration a worker may report, in ms: what a 32-bit integer holds (about 24.8 days). */
  stepDurationMaxMs: 2_147_483_647,
  idempotencyKeyMaxLength: 500,
  eventNameMaxLength: 200,
  eventIdMaxLength: 500,
  listRunsLimitMax: 500,
  listRunsLimitDefault: 50,
  scheduleIdMaxLength: 200,
  listSchedulesLimitMax: 500,
  listSchedulesLimitDefault: 100,
  /** Most ticks one BackfillSchedule fires. */
  backfillTicksMax: 10_000,
  /** A payload match (ListRuns, bulk actions): a JSON object of at most this many bytes. */
  payloadMatchMaxBytes: 64 * 1024,
  stateKeyMaxLength: 400,
  listStateLimitMax: 1000,
  listStateLimitDefault: 100,
  lockTtlMinMs: 100,
  lockTtlMaxMs: 3_600_000,
  lockWaitMaxMs: 60_000,
  workerIdMaxLength: 200,
  errorTextMaxLength: 16 * 1024,
  queuesPerWorkerMax: 100,
  jobsPerWorkerMax: 1000,
  slotsMax: protocolLimits.slotsMax,
  operationsInFlightMax: protocolLimits.operationsInFlightMax,
  claimBatchMax: 1000,
  streamClaimMax: protocolLimits.streamClaimMax,
  invokeChildrenMax: protocolLimits.invokeChildrenMax,
  /**
   * Most bytes of tasks (payloads, and step results for runs that executed
   * before) in one message of a worker stream; a larger task goes alone. Most
   * gRPC libraries refuse messages over 4 MiB unless told otherwise, and the
   * rest of a task (ids, names, trace context) is small.
   */
  taskBytesPerMessage: 3 * 1024 * 1024,
  /**
   * Most bytes of payloads and memos one claim leases (always at least one
   * run; see db/functions/claim-runs.ts). One message of tasks: a claim for a
   * stream leaves in one message unless memos add to it, a ClaimTask answer
   * stays under the 4 MiB most clients accept, and what the server holds per
   * claim in flight is bounded by bytes, not only by count (500 runs of 1 MiB
   * would be 500 MiB).
   */
  claimBytesMax: 3 * 1024 * 1024,
  claimWaitMaxMs: 60_000,
  runWaitMaxMs: 300_000,
  leaseMinMs: 500,
  leaseMaxMs: 3_600_000,
  heartbeatLeasesMax: protocolLimits.heartbeatLeasesMax,
  priorityMin: -1000,
  priorityMax: 1000,
  maxAttemptsMax: 1000,
  retryDelayMaxMs: 365 * 24 * 3_600_000,
  delayMaxMs: 10 * 365 * 24 * 3_600_000,
  traceContextEntriesMax: 16,
  traceContextKeyMaxLength: 64,
  traceContextValueMaxLength: 1024,
  /**
   * Deepest nesting of arrays and objects in JSON a client sends (payloads,
   * results, event data, State Store values). PostgreSQL parses and compares
   * jsonb recursively and runs out of stack between 10,000 and 20,000 levels
   * (containment, used by event waits, sooner); real documents nest a few
   * levels.
   */
  jsonDepthMax: 1000,
  /**
   * Most writes of one kind (enqueues, step results, completions, failures,
   * releases, heartbeat leases) waiting for their group commit on one server;
   * beyond it a write is refused with RESOURCE_EXHAUSTED. Batches hold up to
   * 1,000 items (heartbeats 10,000) and two are written at once, so a full
   * queue means the database is dozens of round trips behind: waiting longer
   * helps no one, and the queue would otherwise grow without bound.
   */
  pendingWritesMax: 100_000,
} as const

/** Namespace, queue and job used when a request leaves them empty. */
export const defaultNamespace = 'default'
export const defaultQueue = 'default'
