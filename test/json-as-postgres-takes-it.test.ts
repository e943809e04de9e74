import type pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { InvalidArgumentError, ResourceExhaustedError } from '../server/src/core/errors.js'
import { checkJsonValue } from '../server/src/core/json-text.js'
import { connect, createTestDatabase } from './support/database.js'

/*
 * checkJsonValue refuses, before the database sees it, exactly the JSON that
 * PostgreSQL's jsonb refuses, and counts each number at the length jsonb
 * writes it. Both are checked here against PostgreSQL itself, on numbers and
 * escapes at the edges of what it takes and on seeded random ones.
 */

let db: pg.Client

beforeAll(async () => {
  db = await connect(await createTestDatabase())
  await db.query(`CREATE FUNCTION pg_temp.jsonb_length(t text) RETURNS integer LANGUAGE plpgsql AS $$
    BEGIN RETURN length(t::jsonb::text); EXCEPTION WHEN OTHERS THEN RETURN -1; END $$`)
})

afterAll(async () => {
  await (db as pg.Client | undefined)?.end()
})

/** The length of each text as jsonb writes it back, or -1 where jsonb refuses it. */
async function postgresLengths(texts: readonly string[]): Promise<number[]> {
  const { rows } = await db.query<{ n: number }>(
    'SELECT pg_temp.jsonb_length(t) AS n FROM unnest($1::text[]) WITH ORDINALITY AS x(t, i) ORDER BY i',
    [texts],
  )
  return rows.map((row) => row.n)
}

/** checkJsonValue's verdict on one text: the length it counts, or -1 when it refuses it as jsonb would. */
function ownLength(text: string): number {
  try {
    return checkJsonValue('value', text, 1 << 30).bytes
  } catch (error) {
    if (error instanceof InvalidArgumentError) return -1
    throw error
  }
}

/** A small deterministic generator (mulberry32), so a failure can be reproduced. */
function random(seed: number): () => number {
  let state = seed
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let t = Math.imul(state ^ (state >>> 15), 1 | state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const edgeNumbers = [
  '0',
  '-0',
  '-0.0',
  '0.000',
  '1',
  '-1',
  '1.50',
  '1e2',
  '1E+2',
  '1.5e-1',
  '123.456e-400',
  '1e-16383',
  '1e-16384',
  '0.0e-16382',
  '0.00e-16382',
  '1e131071',
  '1e131072',
  '10e131070',
  '100e131070',
  '0.1e131073',
  '0.01e131073',
  '-1e131072',
  '9.99e131071',
  '0e1073741823',
  '0e1073741824',
  '0e-1073741823',
  '1e1000000',
  '1e-1000000',
  '0e99999999999',
  '1e2147483648',
  `0.${'0'.repeat(16382)}1`,
  `0.${'0'.repeat(16383)}1`,
  `1${'0'.repeat(131071)}`,
  `1${'0'.repeat(131072)}`,
  `1${'0'.repeat(131071)}.5`,
]

it('numbers at the edges of PostgreSQL numeric: refused and counted as jsonb does', async () => {
  const expected = await postgresLengths(edgeNumbers)
  expect(edgeNumbers.map((text) => [text.slice(0, 30), ownLength(text)])).toEqual(
    edgeNumbers.map((text, i) => [text.slice(0, 30), expected[i] === -1 ? -1 : Math.max(text.length, expected[i]!)]),
  )
})

it('seeded random numbers: refused and counted as jsonb does', async () => {
  const next = random(20_261_207)
  const pick = <T>(items: readonly T[]) => items[Math.floor(next() * items.length)]!
  const digits = (count: number) => Array.from({ length: count }, () => Math.floor(next() * 10)).join('')
  const numbers = Array.from({ length: 600 }, () => {
    const integer = next() < 0.3 ? '0' : String(1 + Math.floor(next() * 9)) + digits(pick([0, 1, 3, 40]))
    const fraction = next() < 0.5 ? '' : '.' + digits(pick([1, 2, 5, 16383, 16384]))
    const exponent =
      next() < 0.3
        ? ''
        : pick(['e', 'E']) + pick(['', '+', '-']) + String(pick([0, 1, 2, 400, 16382, 16383, 16384, 131070, 131071, 131072, 2e9]))
    return (next() < 0.3 ? '-' : '') + integer + fraction + exponent
  })
  const expected = await postgresLengths(numbers)
  const mismatches = numbers.filter((text, i) => ownLength(text) !== (expected[i] === -1 ? -1 : Math.max(text.length, expected[i]!)))
  expect(mismatches.map((text) => text.slice(0, 60))).toEqual([])
})

it('surrogate and NUL escapes: refused where jsonb refuses them', async () => {
  const strings = [
    '"\\ud800"',
    '"\\udc00"',
    '"\\ud800\\udc00"',
    '"\\uD83D\\uDE00"',
    '"\\ud800\\ud800\\udc00"',
    '"\\ud800x"',
    '"\\ud800\\u0041"',
    '"\\udc00\\ud800"',
    '"\\\\ud800"',
    '"\\\\\\ud800"',
    '"\\\\\\\\ud800"',
    '"\\u0000"',
    '"\\\\u0000"',
    '"\\u00e9"',
    '"a\\"\\ud800"',
    '["\\ud800\\udc00", "\\udfff"]',
    '{"\\ud800": 1}',
    '{"k": "\\u0001\\uffff"}',
    '"\\ud800\\\\udc00"',
  ]
  const expected = await postgresLengths(strings)
  expect(strings.map((text) => [text, ownLength(text) === -1])).toEqual(strings.map((text, i) => [text, expected[i] === -1]))
})

it('arrays and objects nested deeper than 1,000 levels are refused', () => {
  expect(ownLength('['.repeat(1000) + ']'.repeat(1000))).toBe(2000)
  expect(ownLength('['.repeat(1001) + ']'.repeat(1001))).toBe(-1)
  expect(ownLength(`[${'{"a":'.repeat(1001)}1${'}'.repeat(1001)}]`)).toBe(-1)
  // Brackets in strings do not nest.
  expect(ownLength(JSON.stringify('['.repeat(5000)))).toBe(5002)
})

it('the size limit counts numbers as jsonb writes them', () => {
  expect(checkJsonValue('value', '[1e3]', 6).bytes).toBe(6)
  expect(() => checkJsonValue('value', '[1e3]', 5)).toThrow(ResourceExhaustedError)
  expect(() => checkJsonValue('value', '[1e999]', 100)).toThrow(ResourceExhaustedError)
})
