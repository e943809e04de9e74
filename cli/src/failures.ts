import { StackShiftError } from '@stackshift/sdk'

/*
 * How a command that did not succeed ends: the exit status a script tests,
 * and the line a person reads on stderr.
 */

/** Exit statuses, as `stackshift --help` lists them. */
export const exitCodes = {
  /** The command did what it was asked. */
  ok: 0,
  /** The server refused the call or failed (or could not be reached). */
  failed: 1,
  /** The command was called wrongly: nothing was sent to the server. */
  usage: 2,
  /** What the command names (a run, a bulk action, a State Store key) does not exist. */
  notFound: 3,
} as const

/** A mistake in how the command was called: its usage goes with it, exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError'
  /** The command whose usage to show; undefined: the overview. */
  constructor(
    message: string,
    readonly group?: string,
  ) {
    super(message)
  }
}

/**
 * Something the command names does not exist, found without a NOT_FOUND from
 * the server (an absent State Store entry reads as no value, not an error).
 */
export class MissingError extends Error {
  override name = 'MissingError'
}

// gRPC status names by code: the codes are fixed by the gRPC specification.
const statusNames = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const

/** How a failure is reported: the stderr line (without the program name) and the exit status. */
export function describeFailure(error: unknown): { message: string; exitCode: number } {
  if (error instanceof UsageError) return { message: error.message, exitCode: exitCodes.usage }
  if (error instanceof MissingError) return { message: `NOT_FOUND: ${error.message}`, exitCode: exitCodes.notFound }
  if (error instanceof StackShiftError) {
    // The status name, not the SDK's class name: it is what every gRPC client and the server's logs call it.
    // Read as any number: a newer server may send a code this table does not know.
    const statusName = (statusNames as readonly string[])[error.code] ?? `status ${error.code}`
    return { message: `${statusName}: ${error.message}`, exitCode: statusName === 'NOT_FOUND' ? exitCodes.notFound : exitCodes.failed }
  }
  return { message: error instanceof Error ? error.message : String(error), exitCode: exitCodes.failed }
}
