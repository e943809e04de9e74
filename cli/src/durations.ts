/*
 * Durations as people type and read them: "500ms", "30s", "10m", "1h30m",
 * "7d" (the forms the SDK's `Duration` accepts).
 */

const unitMs: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }
const durationPattern = /^((?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+)$/
const partPattern = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g

/** Milliseconds in `text`, or undefined when it is not a duration. */
export function parseDurationMs(text: string): number | undefined {
  if (!durationPattern.test(text)) return undefined
  let totalMs = 0
  for (const [, amount, unit] of text.matchAll(partPattern)) totalMs += Number(amount) * unitMs[unit!]!
  return Math.round(totalMs)
}

/** A duration for people, two units at most: "340ms", "1.52s", "3m04s", "2h05m", "3d04h". */
export function formatDurationMs(ms: number): string {
  const sign = ms < 0 ? '-' : ''
  const abs = Math.abs(ms)
  if (abs < 1000) return `${sign}${Math.round(abs)}ms`
  if (abs < 60_000) return `${sign}${(abs / 1000).toFixed(abs < 10_000 ? 2 : 1)}s`
  const pad = (n: number) => String(n).padStart(2, '0')
  const seconds = Math.floor(abs / 1000)
  if (seconds < 3600) return `${sign}${Math.floor(seconds / 60)}m${pad(seconds % 60)}s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 24 * 60) return `${sign}${Math.floor(minutes / 60)}h${pad(minutes % 60)}m`
  const hours = Math.floor(minutes / 60)
  return `${sign}${Math.floor(hours / 24)}d${pad(hours % 24)}h`
}
