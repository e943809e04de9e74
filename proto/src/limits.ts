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
   * Most free slots a worker may announce in `WorkerHello.slots` (runs the
   * server may push to it at once); more is INVALID_ARGUMENT.
   */
  slotsMax: 10_000,
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
