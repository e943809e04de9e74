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
} as const
