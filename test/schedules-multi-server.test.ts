import { afterAll, beforeAll, expect, it } from 'vitest'
import { useTestEnvironment } from './support/environment.js'
import { type TestServer, startTestServer } from './support/server.js'
import { waitUntil } from './support/wait-until.js'

/*
 * Schedules on several servers sharing one database: each tick fires once
 * whichever servers are up. This test runs in real time on purpose (20
 * seconds of a schedule firing every second), as the product promises it;
 * it waits for the ticks' runs, so a slow machine makes it slower, not red.
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

it('a schedule firing every second on three servers, one stopped half-way, fires one run per tick for 20 s, none twice', async () => {
  // 'allow': with no worker the runs stay queued, and every tick must still get its run.
  await env.stackshift.schedules.create({ id: 'per-second', cron: '* * * * * *', queue: 'nobody', job: 'nobody', overlap: 'allow' })
  const ticksOf = async () =>
    (
      await env.db.query<{ tick: Date; key: string }>(
        `SELECT scheduled_at AS tick, idempotency_key AS key FROM stackshift.runs WHERE schedule_id = 'per-second' ORDER BY scheduled_at`,
      )
    ).rows
  const first = (await waitUntil(ticksOf, (rows) => rows.length > 0))[0]!.tick.getTime()
  await waitUntil(ticksOf, (rows) => rows.at(-1)!.tick.getTime() >= first + 10_000)
  await third!.stop()
  third = undefined
  // Until the tick 20 s after the first has its run: a slow machine fires late, not less.
  await waitUntil(ticksOf, (rows) => rows.at(-1)!.tick.getTime() >= first + 20_000, 40_000)
  await env.stackshift.schedules.pause('per-second')

  const rows = (await ticksOf()).filter((row) => row.tick.getTime() < first + 20_000)
  const ticks = rows.map((row) => row.tick.getTime())
  // The 20 whole seconds from the first tick, one after the other: no tick missed, none twice.
  expect(ticks).toEqual(Array.from({ length: 20 }, (_, i) => first + i * 1000))
  expect(rows.map((row) => row.key)).toEqual(rows.map((row) => `schedule:per-second:${row.tick.toISOString()}`))
}, 90_000)
