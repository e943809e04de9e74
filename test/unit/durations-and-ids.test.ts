import { expect, it } from 'vitest'
import { isUuid, newRunId, runIdFloor, runIdTime } from '../../server/src/core/run-id.js'
import { parseDurationMs } from '../../sdk/src/duration.js'
import { InvalidArgumentError } from '../../sdk/src/errors.js'

it('parses durations as milliseconds or unit strings', () => {
  expect(parseDurationMs(1500, 'delay')).toBe(1500)
  expect(parseDurationMs('500ms', 'delay')).toBe(500)
  expect(parseDurationMs('30s', 'delay')).toBe(30_000)
  expect(parseDurationMs('10m', 'delay')).toBe(600_000)
  expect(parseDurationMs('1h30m', 'delay')).toBe(5_400_000)
  expect(parseDurationMs('1.5h', 'delay')).toBe(5_400_000)
  expect(parseDurationMs('7d', 'delay')).toBe(604_800_000)
})

it('rejects negative, unknown and empty durations, naming the option', () => {
  for (const bad of [-5, '-5m', 'soon', '', '5 minutes', Number.NaN, '10x']) {
    expect(() => parseDurationMs(bad, 'timeout')).toThrow(InvalidArgumentError)
    expect(() => parseDurationMs(bad, 'timeout')).toThrow(/^timeout must/)
  }
})

it('makes time-ordered version 7 run ids, and a floor below every id created later', () => {
  const earlier = newRunId(1_700_000_000_000)
  const later = newRunId(1_700_000_000_001)
  expect(isUuid(earlier)).toBe(true)
  expect(earlier[14]).toBe('7')
  expect(earlier < later).toBe(true)
  expect(runIdFloor(1_700_000_000_000) <= earlier).toBe(true)
  expect(runIdFloor(1_700_000_000_001) > earlier).toBe(true)
})

it('run ids made in one millisecond strictly increase, also beyond 4,096 of them', () => {
  const ids = Array.from({ length: 10_000 }, () => newRunId(1_750_000_000_000))
  expect(ids.every((id, i) => i === 0 || ids[i - 1]! < id)).toBe(true)
  expect(ids.every(isUuid)).toBe(true)
  expect(runIdTime(ids[0]!)).toBe(1_750_000_000_000)
})

it('reads the creation time back from a run id', () => {
  expect(runIdTime(newRunId(1_700_000_123_456))).toBe(1_700_000_123_456)
  expect(runIdTime(runIdFloor(1_800_000_000_000))).toBe(1_800_000_000_000)
})
