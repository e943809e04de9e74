import { Cron } from 'croner'
import { InvalidArgumentError } from './errors.js'

/**
 * The ticks of a cron expression in an IANA time zone: pure, with every
 * instant passed in, so tests choose the clock.
 *
 * croner evaluates the expression. It was chosen over cron-parser by the
 * daylight-saving cases, which both get right from one tick to the next: in
 * Europe/Paris a daily 02:30 fires once on the day that skips 02:00-03:00
 * (croner at 03:00, when the clocks have moved on; cron-parser at 03:30)
 * and once, at the first 02:30, on the day that repeats 02:00-03:00. Asked
 * for the next tick from inside the repeated hour (a schedule created or
 * resumed then), cron-parser answers the second 02:30, a second tick that
 * day, and croner the next day's. croner also has no dependencies and
 * refuses expressions of the wrong number of fields rather than filling
 * them in. Nothing here corrects either library: test/unit/schedule-ticks
 * pins the behaviour relied on.
 */
export interface CronSeries {
  /** The first tick strictly after `instant`; undefined when there is none (the expression ran out). */
  nextAfter(instant: Date): Date | undefined
  /** Up to `count` ticks strictly after `instant`, oldest first. */
  nextTicks(instant: Date, count: number): Date[]
  /** The ticks at or after `start` and before `end`, oldest first; at most `max` + 1, so a caller can tell the range held more. */
  ticksBetween(start: Date, end: Date, max: number): Date[]
}

/** Longest cron expression accepted. */
export const cronMaxLength = 200

/** The zone of a schedule that names none. */
export const defaultTimezone = 'UTC'

// A zone name of the IANA database: "UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT+5".
const zoneNamePattern = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/

/** Whether `timezone` is a zone of the IANA database this process knows (Intl's). */
export function isKnownTimezone(timezone: string): boolean {
  if (!zoneNamePattern.test(timezone)) return false
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone })
    return true
  } catch {
    return false
  }
}

/**
 * Parses a schedule's expression and zone; throws InvalidArgumentError naming
 * `<prefix>cron` or `<prefix>timezone` when either is unusable, or the
 * expression never fires.
 */
export function parseCronSeries(cron: string, timezone: string, fieldPrefix = ''): CronSeries {
  const cronField = `${fieldPrefix}cron`
  if (!isKnownTimezone(timezone)) {
    throw new InvalidArgumentError(
      `${fieldPrefix}timezone`,
      `"${timezone}" is not a time zone of the IANA database (such as "Europe/Paris")`,
    )
  }
  const expression = cron.trim()
  if (expression === '') throw new InvalidArgumentError(cronField, 'must not be empty')
  if (cron.length > cronMaxLength) throw new InvalidArgumentError(cronField, `must be at most ${cronMaxLength} characters`)
  const fields = expression.split(/\s+/).length
  if (!expression.startsWith('@') && fields !== 5 && fields !== 6) {
    throw new InvalidArgumentError(cronField, `must have five fields (minute hour day month weekday) or six (seconds first), not ${fields}`)
  }
  let job: Cron
  try {
    job = new Cron(expression, { timezone, mode: '5-or-6-parts', paused: true })
  } catch (error) {
    throw new InvalidArgumentError(cronField, `is not a valid cron expression: ${(error as Error).message.replace(/^CronPattern: /, '')}`)
  }
  const series = cronSeries(job)
  if (series.nextAfter(new Date()) === undefined) throw new InvalidArgumentError(cronField, 'never fires')
  return series
}

// Schedules that share an expression and a zone mostly ask for the same next
// tick (10,000 schedules of "* * * * *" due the same minute); a few answers are
// remembered per series. croner takes about 0.1 ms an answer.
const rememberedAnswersMax = 64

function cronSeries(job: Cron): CronSeries {
  const answers = new Map<number, Date | undefined>()
  const nextAfter = (instant: Date): Date | undefined => {
    const key = instant.getTime()
    if (answers.has(key)) return answers.get(key)
    const next = job.nextRun(instant) ?? undefined
    if (answers.size >= rememberedAnswersMax) answers.clear()
    answers.set(key, next)
    return next
  }
  return {
    nextAfter,
    nextTicks: (instant, count) => {
      const ticks: Date[] = []
      for (let tick = nextAfter(instant); tick && ticks.length < count; tick = nextAfter(tick)) ticks.push(tick)
      return ticks
    },
    ticksBetween: (start, end, max) => {
      const ticks: Date[] = []
      for (let tick = nextAfter(new Date(start.getTime() - 1)); tick && tick < end && ticks.length <= max; tick = nextAfter(tick)) {
        ticks.push(tick)
      }
      return ticks
    },
  }
}

/**
 * Parsed series by expression and zone, so a pass over thousands of
 * schedules parses each distinct expression once. Expressions are those of
 * stored schedules, validated when stored; at most `capacity` are kept
 * (all are dropped when it is reached: cheap, and rare).
 */
export class CronSeriesCache {
  private readonly series = new Map<string, CronSeries>()

  constructor(private readonly capacity = 10_000) {}

  get(cron: string, timezone: string): CronSeries {
    const key = `${timezone} ${cron}`
    let found = this.series.get(key)
    if (!found) {
      if (this.series.size >= this.capacity) this.series.clear()
      found = parseCronSeries(cron, timezone)
      this.series.set(key, found)
    }
    return found
  }
}
