import type { Run, StepInfo } from '@stackshift/sdk'
import { expect, it } from 'vitest'
import { summarizeHour } from '../../cli/src/commands/queues.js'
import { formatDurationMs, parseDurationMs } from '../../cli/src/durations.js'
import { toJsonDocument } from '../../cli/src/format.js'
import { barWidth, renderBar, renderTimeline } from '../../cli/src/run-timeline.js'
import { renderTable } from '../../cli/src/table.js'

/* What the command line prints, from values made here: tables, durations, the run timeline. */

it('durations parse as the SDK takes them and print in at most two units', () => {
  expect(['500ms', '30s', '1h30m', '1.5s', '7d'].map(parseDurationMs)).toEqual([500, 30_000, 5_400_000, 1500, 604_800_000])
  expect(['soon', '', '10', '1h 30m', '-1s'].map(parseDurationMs)).toEqual([undefined, undefined, undefined, undefined, undefined])
  expect([0, 340, 1520, 15_400, 184_000, 7_500_000, 273_600_000, -2300].map(formatDurationMs)).toEqual([
    '0ms',
    '340ms',
    '1.52s',
    '15.4s',
    '3m04s',
    '2h05m',
    '3d04h',
    '-2.30s',
  ])
})

it('a table aligns each column to its widest cell and leaves no trailing spaces', () => {
  expect(
    renderTable(
      ['ID', 'NAME', 'NOTE'],
      [
        ['1', 'a-long-name', ''],
        ['22', 'b', 'x'],
      ],
    ),
  ).toBe('ID  NAME         NOTE\n1   a-long-name\n22  b            x')
})

it('the --json document keeps absent fields as null and dates as ISO 8601', () => {
  expect(JSON.parse(toJsonDocument({ at: new Date(0), gone: undefined, list: [undefined] }))).toEqual({
    at: '1970-01-01T00:00:00.000Z',
    gone: null,
    list: [null],
  })
})

it('a bar places a span on the scale, shows at least one cell, and clips what falls outside', () => {
  expect(renderBar({ startMs: 0, endMs: 1000, isWait: false }, 1000)).toBe('█'.repeat(barWidth))
  expect(renderBar({ startMs: 500, endMs: 500, isWait: false }, 1000)).toBe(`${' '.repeat(15)}█${' '.repeat(14)}`)
  expect(renderBar({ startMs: -200, endMs: 100, isWait: true }, 1000)).toBe(`░░░${' '.repeat(27)}`)
  expect(renderBar({ startMs: 900, endMs: 5000, isWait: true }, 1000)).toBe(`${' '.repeat(27)}░░░`)
})

it('the timeline lists attempts and steps as they started, with what each sleep and wait waits for', () => {
  const at = (ms: number) => new Date(Date.UTC(2027, 0, 1) + ms)
  const step = (fields: Partial<StepInfo> & Pick<StepInfo, 'id' | 'kind' | 'status'>): StepInfo => ({
    result: undefined,
    error: undefined,
    attempt: 1,
    startedAt: undefined,
    finishedAt: undefined,
    wakeAt: undefined,
    ...fields,
  })
  const run = {
    status: 'waiting',
    forkedFrom: { runId: 'r_source', stepId: 'load' },
    createdAt: at(0),
    finishedAt: undefined,
    attemptHistory: [
      {
        attempt: 1,
        outcome: 'failed',
        startedAt: at(100),
        finishedAt: at(400),
        error: { name: 'TypeError', message: 'no card\n    at charge' },
      },
    ],
    steps: [
      // Copied by a replay from the run it forks: it ran there, before this run was created.
      step({ id: 'read', kind: 'run', status: 'completed', attempt: 0, result: 'cached', startedAt: at(-9000), finishedAt: at(-8000) }),
      step({ id: 'load', kind: 'run', status: 'completed', result: { rows: 3 }, startedAt: at(150), finishedAt: at(350) }),
      step({ id: 'nap', kind: 'sleep', status: 'completed', startedAt: at(500), finishedAt: at(700), wakeAt: at(700) }),
      step({ id: 'approval', kind: 'wait', status: 'waiting', startedAt: at(800), wakeAt: at(3_600_800) }),
    ],
  } as unknown as Run
  const lines = renderTimeline(run, at(1000)).split('\n')
  expect(lines[0]).toBe('timeline (offsets from creation at 2027-01-01T00:00:00Z; █ working, ░ waiting)')
  expect(lines[1]).toMatch(/^ +START +TOOK +0 +1\.00s$/)
  const barColumn = lines[1]!.indexOf('0 ')
  const rows = lines.slice(2).map((line) => ({
    bar: line.slice(barColumn, barColumn + barWidth),
    text: `${line.slice(0, barColumn)}|${line.slice(barColumn + barWidth)}`.replace(/ {2,}/g, ' '),
  }))
  expect(rows).toEqual([
    { bar: ' '.repeat(barWidth), text: 'step read | copied: → "cached"' },
    { bar: `${' '.repeat(3)}${'█'.repeat(9)}${' '.repeat(18)}`, text: 'attempt 1 +100ms 300ms | failed: TypeError: no card' },
    { bar: `${' '.repeat(4)}${'█'.repeat(7)}${' '.repeat(19)}`, text: 'step load +150ms 200ms | → {"rows":3}' },
    { bar: `${' '.repeat(15)}${'░'.repeat(6)}${' '.repeat(9)}`, text: 'sleep nap +500ms 200ms | slept until 2027-01-01T00:00:00Z' },
    {
      bar: `${' '.repeat(24)}${'░'.repeat(6)}`,
      text: 'wait approval +800ms 200ms | waiting for an event, times out at 2027-01-01T01:00:00Z',
    },
  ])
})

it("a queue's last hour sums its minutes, and weighs each minute's start latency by the runs that started in it", () => {
  const minute = (started: number, meanStartLatencyMs: number) => ({
    minute: new Date(0),
    completed: 1,
    failed: 2,
    started,
    meanStartLatencyMs,
  })
  const stats = { queue: 'q', ready: 0, delayed: 0, waiting: 0, running: 0, minutes: [minute(1, 1000), minute(3, 200), minute(0, 0)] }
  expect(summarizeHour(stats)).toEqual({ started: 4, completed: 3, failed: 6, meanStartLatencyMs: 400 })
  expect(summarizeHour({ ...stats, minutes: [] })).toEqual({ started: 0, completed: 0, failed: 0, meanStartLatencyMs: undefined })
})
