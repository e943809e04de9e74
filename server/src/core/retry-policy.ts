/** Exponential backoff with jitter for failed attempts. Pure: no clock, no I/O. */

/** How retries are spaced. */
export interface RetryBackoff {
  /** Delay before the second attempt, in milliseconds. */
  baseMs: number
  /** Upper bound of any delay, in milliseconds. */
  maxMs: number
}

/**
 * Delay before the attempt after `failedAttempt` (1-based): base * 2^(n-1),
 * capped at max, then scaled by a random factor in [0.5, 1). "Equal jitter"
 * keeps every delay at least half the exponential value, so the backoff stays
 * visible in attempt times, while spreading retries of runs that failed together.
 */
export function retryDelayMs(failedAttempt: number, backoff: RetryBackoff, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(failedAttempt - 1, 0), 52)
  const exponential = Math.min(backoff.maxMs, backoff.baseMs * 2 ** exponent)
  return Math.round(exponential * (0.5 + random() * 0.5))
}

/** What happens to a run after an attempt ends in failure. */
export type AttemptFailureOutcome = { kind: 'retry'; delayMs: number } | { kind: 'fail' }

/**
 * Decides whether a failed attempt is retried and after how long.
 * @param attempt the attempt that failed (1-based)
 * @param maxAttempts attempts allowed in total
 * @param requestedDelayMs a delay the handler asked for (RetryAfterError), if any
 */
export function decideAfterFailure(input: {
  attempt: number
  maxAttempts: number
  isRetriable: boolean
  requestedDelayMs: number | undefined
  backoff: RetryBackoff
  random?: () => number
}): AttemptFailureOutcome {
  if (!input.isRetriable || input.attempt >= input.maxAttempts) return { kind: 'fail' }
  const delayMs = input.requestedDelayMs ?? retryDelayMs(input.attempt, input.backoff, input.random)
  return { kind: 'retry', delayMs }
}
