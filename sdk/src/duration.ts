import { InvalidArgumentError } from './errors.js'

/**
 * A duration: milliseconds as a number, or a string such as "500ms", "30s",
 * "10m", "1h", "7d" (units may be combined: "1h30m").
 */
export type Duration = number | string

const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }
const durationPattern = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/

/**
 * Milliseconds in `duration`. Throws InvalidArgumentError naming `field` for anything
 * that is not a non-negative number or a well-formed duration string.
 */
export function parseDurationMs(duration: Duration, field: string): number {
  if (typeof duration === 'number') {
    if (!Number.isFinite(duration) || duration < 0)
      throw new InvalidArgumentError(`${field} must be a non-negative number of milliseconds, got ${duration}`)
    return Math.round(duration)
  }
  if (typeof duration !== 'string')
    throw new InvalidArgumentError(`${field} must be milliseconds or a duration string like "30s", got ${typeof duration}`)
  let rest = duration.trim()
  let total = 0
  if (rest === '') throw new InvalidArgumentError(`${field} must not be empty`)
  while (rest !== '') {
    const match = durationPattern.exec(rest)
    if (!match) throw new InvalidArgumentError(`${field} must be a duration like "500ms", "30s", "10m", "1h" or "7d", got "${duration}"`)
    total += Number(match[1]) * unitMs[match[2]!]!
    rest = rest.slice(match[0].length)
  }
  return Math.round(total)
}
