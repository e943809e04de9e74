import { afterAll, beforeAll, expect, it } from 'vitest'
import { useTestEnvironment } from './support/environment.js'
import { type TestServer, startTestServer } from './support/server.js'

/*
 * Schedules on several servers sharing one database: each tick fires once
 * whichever servers are up. This test measures real time on purpose (20
 * seconds of a schedule firing every second), as the product promises it.
 */

const env = useTestEnvironment()
let second: TestServer
let third: TestServer | undefined

beforeAll(async () => {
  second = await startTestServer(env.databaseUrl)
  third = await startTestServer(env.databaseUrl)
})

afterAll(async () => {
  await third?.stop()
  await second.stop()
})

it('a schedule firing every second on three servers, one stopped half-way, fires 20 ± 1 runs in 20 s, none twice', async () => {
  // 'allow': with no worker the runs stay queued, and every tick must still get its run.
  await env.stackshift.schedules.create({ id: 'per-second', cron: '* * * * * *', queue: 'nobody', job: 'nobody', overlap: 'allow' })
  const startedAt = Date.now()
  await new Promise((resolve) => setTimeout(resolve, 10_000))
  await third!.stop()
  third = undefined
  await new Promise((resolve) => setTimeout(resolve, startedAt + 20_000 - Date.now()))
  await env.stackshift.schedules.pause('per-second')

  const { rows } = await env.db.query<{ tick: Date; key: string }>(
    `SELECT scheduled_at AS tick, idempotency_key AS key FROM stackshift.runs WHERE schedule_id = 'per-second' ORDER BY scheduled_at`,
  )
  const ticks = rows.map((row) => row.tick.getTime())
  expect(ticks.length).toBeGreaterThanOrEqual(19)
  expect(ticks.length).toBeLessThanOrEqual(21)
  expect(new Set(ticks).size).toBe(ticks.length)
  // Whole seconds, one after the other: no tick missed, none twice.
  ticks.forEach((tick, i) => expect(tick).toBe(ticks[0]! + i * 1000))
  expect(rows.map((row) => row.key)).toEqual(rows.map((row) => `schedule:per-second:${row.tick.toISOString()}`))
}, 60_000)
