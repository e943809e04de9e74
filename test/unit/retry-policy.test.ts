import { expect, it } from 'vitest'
import { decideAfterFailure, retryDelayMs } from '../../server/src/core/retry-policy.js'

const backoff = { baseMs: 1000, maxMs: 60_000 }

it('doubles the delay with each failed attempt, with jitter between half and all of it', () => {
  for (const [attempt, exponential] of [
    [1, 1000],
    [2, 2000],
    [3, 4000],
    [6, 32_000],
  ] as const) {
    expect(retryDelayMs(attempt, backoff, () => 0)).toBe(exponential / 2)
    expect(retryDelayMs(attempt, backoff, () => 0.999_999)).toBe(Math.round(exponential * 0.999_999_5))
  }
})

it('caps the delay at the maximum, even for huge attempt numbers', () => {
  expect(retryDelayMs(7, backoff, () => 0.999_999)).toBeLessThanOrEqual(60_000)
  expect(retryDelayMs(10_000, backoff, () => 0.5)).toBe(45_000)
})

it('fails for good when attempts are used up or the error is not retriable', () => {
  const common = { backoff, requestedDelayMs: undefined, random: () => 0 }
  expect(decideAfterFailure({ ...common, attempt: 5, maxAttempts: 5, isRetriable: true })).toEqual({ kind: 'fail' })
  expect(decideAfterFailure({ ...common, attempt: 1, maxAttempts: 5, isRetriable: false })).toEqual({ kind: 'fail' })
  expect(decideAfterFailure({ ...common, attempt: 2, maxAttempts: 5, isRetriable: true })).toEqual({ kind: 'retry', delayMs: 1000 })
})

it('uses the delay the handler asked for instead of the backoff', () => {
  expect(decideAfterFailure({ attempt: 1, maxAttempts: 3, isRetriable: true, requestedDelayMs: 0, backoff })).toEqual({
    kind: 'retry',
    delayMs: 0,
  })
  expect(decideAfterFailure({ attempt: 3, maxAttempts: 3, isRetriable: true, requestedDelayMs: 5000, backoff })).toEqual({ kind: 'fail' })
})
