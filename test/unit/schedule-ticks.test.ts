import { describe, expect, it } from 'vitest'
import { InvalidArgumentError } from '../../server/src/core/errors.js'
import { type DueSchedule, planDueTicks } from '../../server/src/core/schedule.js'
import { parseCronSeries } from '../../server/src/core/schedule-ticks.js'

const iso = (dates: readonly Date[]) => dates.map((date) => date.toISOString())
const at = (text: string) => new Date(text)

describe('cron ticks in a time zone', () => {
  it('fires a 02:30 daily schedule once on the day Paris skips 02:00-03:00, when the clocks have moved on', () => {
    const series = parseCronSeries('30 2 * * *', 'Europe/Paris')
    // 2026-03-29: 02:00 CET becomes 03:00 CEST. 02:30 does not exist that day.
    expect(iso(series.ticksBetween(at('2026-03-27T00:00:00Z'), at('2026-03-31T00:00:00Z'), 100))).toEqual([
      '2026-03-27T01:30:00.000Z', // 02:30 CET
      '2026-03-28T01:30:00.000Z',
      '2026-03-29T01:00:00.000Z', // 03:00 CEST: the first instant after the skipped 02:30
      '2026-03-30T00:30:00.000Z', // 02:30 CEST
    ])
  })

  it('fires a 02:30 daily schedule once on the day Paris repeats 02:00-03:00, at the first 02:30', () => {
    const series = parseCronSeries('30 2 * * *', 'Europe/Paris')
    // 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens at 00:30Z and again at 01:30Z.
    expect(iso(series.ticksBetween(at('2026-10-24T00:00:00Z'), at('2026-10-27T00:00:00Z'), 100))).toEqual([
      '2026-10-24T00:30:00.000Z',
      '2026-10-25T00:30:00.000Z',
      '2026-10-26T01:30:00.000Z',
    ])
  })

  it('does not fire the repeated 02:30 again when asked from inside the repeated hour (a schedule created or resumed then)', () => {
    const series = parseCronSeries('30 2 * * *', 'Europe/Paris')
    // 01:00Z on 2026-10-25 is the second 02:00, after the first 02:30 passed.
    expect(series.nextAfter(at('2026-10-25T01:00:00Z'))?.toISOString()).toBe('2026-10-26T01:30:00.000Z')
  })

  it('fires the same cases right in New York', () => {
    const series = parseCronSeries('30 2 * * *', 'America/New_York')
    expect(iso(series.ticksBetween(at('2026-03-07T00:00:00Z'), at('2026-03-10T00:00:00Z'), 100))).toEqual([
      '2026-03-07T07:30:00.000Z',
      '2026-03-08T07:00:00.000Z', // 03:00 EDT, after the skipped 02:30
      '2026-03-09T06:30:00.000Z',
    ])
    const fallBack = parseCronSeries('30 1 * * *', 'America/New_York')
    expect(iso(fallBack.ticksBetween(at('2026-10-31T00:00:00Z'), at('2026-11-03T00:00:00Z'), 100))).toEqual([
      '2026-10-31T05:30:00.000Z',
      '2026-11-01T05:30:00.000Z', // 01:30 EDT, the first of the two
      '2026-11-02T06:30:00.000Z',
    ])
  })

  it('keeps an hourly schedule hourly in real time across both changes', () => {
    const series = parseCronSeries('0 * * * *', 'Europe/Paris')
    expect(iso(series.ticksBetween(at('2026-10-24T23:00:00Z'), at('2026-10-25T03:00:00Z'), 100))).toHaveLength(4)
    expect(iso(series.ticksBetween(at('2026-03-28T23:00:00Z'), at('2026-03-29T03:00:00Z'), 100))).toHaveLength(4)
  })

  it('reads six fields as seconds first, and gives the range start included and its end excluded', () => {
    const series = parseCronSeries('*/10 * * * * *', 'UTC')
    expect(iso(series.ticksBetween(at('2026-01-01T00:00:00Z'), at('2026-01-01T00:00:30Z'), 100))).toEqual([
      '2026-01-01T00:00:00.000Z',
      '2026-01-01T00:00:10.000Z',
      '2026-01-01T00:00:20.000Z',
    ])
    expect(iso(series.nextTicks(at('2026-01-01T00:00:05.500Z'), 2))).toEqual(['2026-01-01T00:00:10.000Z', '2026-01-01T00:00:20.000Z'])
  })

  it('returns one tick beyond the maximum, so a caller can tell the range held more', () => {
    const series = parseCronSeries('0 * * * *', 'UTC')
    expect(series.ticksBetween(at('2026-01-01T00:00:00Z'), at('2026-01-02T00:00:00Z'), 10)).toHaveLength(11)
  })

  it.each([
    ['61 * * * *', 'UTC', 'cron'],
    ['* * *', 'UTC', 'cron'],
    ['* * * * * * *', 'UTC', 'cron'],
    ['', 'UTC', 'cron'],
    ['0 0 30 2 *', 'UTC', 'cron'],
    ['not cron at all', 'UTC', 'cron'],
    ['* * * * *', 'Mars/Olympus_Mons', 'timezone'],
    ['* * * * *', '+01:00', 'timezone'],
    ['* * * * *', '', 'timezone'],
  ])('refuses %j in %j, naming schedule.%s', (cron, timezone, field) => {
    let error: unknown
    try {
      parseCronSeries(cron, timezone, 'schedule.')
    } catch (thrown) {
      error = thrown
    }
    expect(error).toBeInstanceOf(InvalidArgumentError)
    expect((error as InvalidArgumentError).field).toBe(`schedule.${field}`)
  })
})

describe('what a pass does with due ticks', () => {
  const minutely = parseCronSeries('* * * * *', 'UTC')
  const due = (overrides: Partial<DueSchedule>): DueSchedule => ({
    overlap: 'allow',
    catchupWindowMs: 3_600_000,
    nextFireAt: at('2026-01-01T00:00:00Z'),
    bufferedAt: undefined,
    hasUnfinishedRun: false,
    ...overrides,
  })
  const now = at('2026-01-01T00:02:30Z')

  it('fires every due tick with allow, and moves to the first tick after now', () => {
    const plan = planDueTicks(due({}), minutely, now, 100)
    expect(iso(plan.fire)).toEqual(['2026-01-01T00:00:00.000Z', '2026-01-01T00:01:00.000Z', '2026-01-01T00:02:00.000Z'])
    expect(plan.nextFireAt?.toISOString()).toBe('2026-01-01T00:03:00.000Z')
    expect(plan.lastTickAt?.toISOString()).toBe('2026-01-01T00:02:00.000Z')
  })

  it('fires only the first of several due ticks with skip, and none while a run is unfinished', () => {
    expect(iso(planDueTicks(due({ overlap: 'skip' }), minutely, now, 100).fire)).toEqual(['2026-01-01T00:00:00.000Z'])
    const busy = planDueTicks(due({ overlap: 'skip', hasUnfinishedRun: true }), minutely, now, 100)
    expect(busy.fire).toEqual([])
    expect(busy.skipped).toBe(3)
  })

  it('keeps one tick waiting with buffer_one, and fires it first once nothing is unfinished', () => {
    const busy = planDueTicks(due({ overlap: 'buffer_one', hasUnfinishedRun: true }), minutely, now, 100)
    expect(busy.fire).toEqual([])
    expect(busy.bufferedAt?.toISOString()).toBe('2026-01-01T00:00:00.000Z')
    expect(busy.skipped).toBe(2)
    const later = at('2026-01-01T00:03:10Z')
    const freed = planDueTicks(
      due({ overlap: 'buffer_one', nextFireAt: busy.nextFireAt, bufferedAt: busy.bufferedAt }),
      minutely,
      later,
      100,
    )
    expect(iso(freed.fire)).toEqual(['2026-01-01T00:00:00.000Z'])
    // The 00:03 tick found the buffered run unfinished and waits in turn.
    expect(freed.bufferedAt?.toISOString()).toBe('2026-01-01T00:03:00.000Z')
  })

  it('fires only the last due tick with cancel_previous, cancelling what is unfinished', () => {
    const plan = planDueTicks(due({ overlap: 'cancel_previous', hasUnfinishedRun: true }), minutely, now, 100)
    expect(iso(plan.fire)).toEqual(['2026-01-01T00:02:00.000Z'])
    expect(plan.cancelUnfinished).toBe(true)
  })

  it('drops ticks older than the catch-up window without walking them, and fires those inside it', () => {
    const plan = planDueTicks(due({ nextFireAt: at('2025-01-01T00:00:00Z'), catchupWindowMs: 120_000 }), minutely, now, 100)
    expect(plan.isBehindWindow).toBe(true)
    expect(iso(plan.fire)).toEqual(['2026-01-01T00:01:00.000Z', '2026-01-01T00:02:00.000Z'])
  })

  it('handles at most maxTicks, leaving the rest due for the next batch', () => {
    const plan = planDueTicks(due({}), minutely, now, 2)
    expect(plan.fire).toHaveLength(2)
    expect(plan.nextFireAt?.toISOString()).toBe('2026-01-01T00:02:00.000Z')
  })

  it('fires a buffered tick of a schedule whose expression has no more ticks, and nothing else', () => {
    const plan = planDueTicks(
      due({ overlap: 'buffer_one', nextFireAt: undefined, bufferedAt: at('2026-01-01T00:01:00Z') }),
      minutely,
      now,
      100,
    )
    expect(iso(plan.fire)).toEqual(['2026-01-01T00:01:00.000Z'])
    expect(plan).toMatchObject({ bufferedAt: undefined, nextFireAt: undefined, lastTickAt: undefined })
  })

  it('fires nothing for a schedule whose next tick is in the future', () => {
    const plan = planDueTicks(due({ nextFireAt: at('2026-01-01T00:05:00Z') }), minutely, now, 100)
    expect(plan).toMatchObject({ fire: [], lastTickAt: undefined })
    expect(plan.nextFireAt?.toISOString()).toBe('2026-01-01T00:05:00.000Z')
  })
})
