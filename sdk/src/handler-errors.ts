import { parseDurationMs } from './duration.js'

/**
 * Throw from a handler (or a step) to fail the run at once, without the
 * retries that remain.
 */
export class NonRetriableError extends Error {
  override name = 'NonRetriableError'
}

/**
 * Throw from a handler (or a step) to retry after a chosen delay instead of
 * the exponential backoff. Still counts as an attempt.
 */
export class RetryAfterError extends Error {
  override name = 'RetryAfterError'
  /** Milliseconds to wait before the next attempt. */
  readonly retryAfterMs: number

  /**
   * @param message what went wrong
   * @param retryAfter delay in milliseconds, a duration string ("30s"), or the instant to retry at
   */
  constructor(message: string, retryAfter: number | string | Date, options?: ErrorOptions) {
    super(message, options)
    this.retryAfterMs =
      retryAfter instanceof Date ? Math.max(0, retryAfter.getTime() - Date.now()) : parseDurationMs(retryAfter, 'retryAfter')
  }
}
