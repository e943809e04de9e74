/**
 * Limits of the protocol that the server enforces and clients plan around,
 * defined once beside the .proto files so that the server's validation and
 * the TypeScript SDK cannot drift apart. The .proto comments state the same
 * numbers for clients in other languages. Limits only the server needs are in
 * server/src/core/limits.ts. Message sizes are not shared values: each side
 * sets its own gRPC limits (the server's STACKSHIFT_MAX_MESSAGE_BYTES, the
 * SDK's channel options).
 */
export const protocolLimits = {
  /**
   * Most child runs one SuspendRun's `invoke` may start. A worker sends every
   * step.invoke its handler makes before it next yields in one request, so a
   * fan-out wider than this must be split (awaited in rounds).
   */
  invokeChildrenMax: 1_000,
  /**
   * Most free slots a worker stream may have: `WorkerHello.slots` above it is
   * INVALID_ARGUMENT, and an `added_slots` that would raise the stream's free
   * slots (hello.slots plus every added_slots, less the tasks pushed) above it
   * ends the stream with RESOURCE_EXHAUSTED.
   */
  slotsMax: 10_000,
  /**
   * Most operations of one Connect stream the server holds unanswered; one
   * beyond it is answered at once with RESOURCE_EXHAUSTED and not performed.
   * Twice `slotsMax`: a worker holds at most `slotsMax` runs and writes about
   * each one at a time (a step, then the next; its completion), and a run
   * whose handler has returned may still be reporting its outcome while the
   * slot it freed already holds the next run. Steps a handler runs in
   * parallel count one each.
   */
  operationsInFlightMax: 20_000,
  /**
   * Most runs one claim leases for a worker stream. A worker that holds twice
   * this (running and ready) executes one batch while the next is claimed;
   * one claim of twice the size would make it wait for every claim.
   */
  streamClaimMax: 500,
  /**
   * Most leases one heartbeat may name. A worker heartbeats every lease it
   * holds in one message, and it holds at most as many as its slots.
   */
  heartbeatLeasesMax: 10_000,
  /**
   * How often clients ping an idle connection to notice that it died, in ms.
   * Servers accept pings at up to twice this rate; a client that pings faster
   * is disconnected by the server (GOAWAY, too_many_pings).
   */
  keepalivePingIntervalMs: 10_000,
} as const
