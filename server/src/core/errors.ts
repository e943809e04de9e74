/**
 * Domain errors. The RPC layer maps each class to one gRPC status code
 * (see rpc/error-map.ts); nothing else builds status errors.
 */

/** Base class of every error the server raises on purpose. */
export abstract class DomainError extends Error {
  override name = this.constructor.name
}

/** A request field is missing or malformed. Maps to INVALID_ARGUMENT. */
export class InvalidArgumentError extends DomainError {
  /**
   * @param field the protobuf field path as the client sent it, e.g. `run.payload_json`
   * @param problem what is wrong with it, phrased to follow the field name
   */
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(`${field}: ${problem}`)
  }
}

/** The named run (or other entity) does not exist in the namespace. Maps to NOT_FOUND. */
export class NotFoundError extends DomainError {}

/**
 * A worker wrote about a run it no longer holds: the lease expired, was handed
 * to another attempt, or the run ended. Nothing was stored. Maps to FAILED_PRECONDITION.
 */
export class LeaseLostError extends DomainError {
  constructor(readonly runId: string) {
    super(`lease on run ${runId} is not held: it expired, was released, or the run ended`)
  }
}

/** The operation is not allowed in the run's current state. Maps to FAILED_PRECONDITION. */
export class FailedPreconditionError extends DomainError {}

/** A size or count limit was exceeded. Maps to RESOURCE_EXHAUSTED. */
export class ResourceExhaustedError extends DomainError {
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(`${field}: ${problem}`)
  }
}

/** The server cannot serve the request now (shutting down, database down). Maps to UNAVAILABLE. */
export class UnavailableError extends DomainError {}

/** The call carries no valid credential: none, unknown, expired or revoked. Maps to UNAUTHENTICATED. */
export class UnauthenticatedError extends DomainError {}

/** The caller's key does not allow the call: another namespace, or a scope it lacks. Maps to PERMISSION_DENIED. */
export class PermissionDeniedError extends DomainError {}
