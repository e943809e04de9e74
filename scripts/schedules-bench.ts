/**
 * `npm run bench:schedules`: 10,000 schedules firing every minute. Starts a
 * fresh embedded PostgreSQL and `--servers` servers on it (default 1),
 * creates the schedules through ScheduleService (`* * * * *`, overlap
 * allow, so every tick gets its run), lets `--minutes` minutes fire
 * (default 2), and reports the delay from each tick to its run's insert
 * (runs.created_at - runs.scheduled_at, both on the database clock;
 * created_at is the start of the batch's transaction) and, from the ready
 * notices each batch sends as it commits, when the first and the last
 * batch of each tick were committed: from then on workers can claim the
 * runs. docs/performance.md keeps the results.
 *
 *   npm run bench:schedules -- --schedules 10000 --minutes 2 --servers 2
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { StackShift } from '../sdk/src/index.js'
import { loadConfig } from '../server/src/config.js'
import { createDatabase, sql } from '../server/src/db/database.js'
import { startEmbeddedPostgres } from '../server/src/db/embedded-postgres.js'
import { createLogger } from '../server/src/logger.js'
import { type StackShiftServer, startServer } from '../server/src/server.js'

const { values } = parseArgs({
  options: {
    schedules: { type: 'string', default: '10000' },
    minutes: { type: 'string', default: '2' },
    servers: { type: 'string', default: '1' },
  },
})
const scheduleCount = Number(values.schedules)
const minutes = Number(values.minutes)
const serverCount = Number(values.servers)

const logger = createLogger('warn')
const dir = await mkdtemp(join(tmpdir(), 'stackshift-schedules-'))
const postgres = await startEmbeddedPostgres({ dataDir: dir, port: 0, logger, settings: { shared_buffers: '256MB' } })
const servers: StackShiftServer[] = []
const db = createDatabase({ url: postgres.url, poolSize: 2 })
try {
  const config = { ...loadConfig({}), port: 0, isMetricsEnabled: false, isConsoleEnabled: false, logLevel: 'warn' as const }
  for (let i = 0; i < serverCount; i++) servers.push(await startServer({ ...config, databaseUrl: postgres.url }, logger))
  const client = new StackShift({ address: `127.0.0.1:${servers[0]!.port}` })

  const createStarted = Date.now()
  const ids = Array.from({ length: scheduleCount }, (_, i) => `bench-${i}`)
  for (let start = 0; start < ids.length; start += 50) {
    await Promise.all(
      ids
        .slice(start, start + 50)
        .map((id) => client.schedules.create({ id, cron: '* * * * *', queue: 'bench', job: 'report', payload: { id }, overlap: 'allow' })),
    )
  }
  const createdInMs = Date.now() - createStarted
  console.log(`created ${scheduleCount} schedules in ${(createdInMs / 1000).toFixed(1)} s`)

  // Measure whole minutes: from the next minute boundary, `minutes` of them, plus a little for the last to finish.
  const firstTick = Math.ceil(Date.now() / 60_000) * 60_000
  const lastTick = firstTick + (minutes - 1) * 60_000
  // Each committed batch sends one notice; its arrival here is when its runs became claimable.
  const listener = new pg.Client({ connectionString: postgres.url })
  await listener.connect()
  const commits: number[] = []
  listener.on('notification', () => commits.push(Date.now()))
  await listener.query('LISTEN stackshift_ready')
  const loadDuring: number[] = []
  const sampler = setInterval(() => loadDuring.push(loadavg()[0]!), 5000)
  await new Promise((resolve) => setTimeout(resolve, lastTick + 30_000 - Date.now()))
  clearInterval(sampler)
  await listener.end()
  for (const server of servers) await server.stop()
  servers.length = 0
  client.close()

  const rows = await sql<{ tick: Date; runs: number; ticks: number; p50: number; p95: number; p99: number; max: number; spread: number }>(
    db,
    `SELECT scheduled_at AS tick, count(*)::int AS runs, count(DISTINCT schedule_id)::int AS ticks,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY delay) AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY delay) AS p95,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY delay) AS p99,
       max(delay) AS max,
       (extract(epoch FROM max(created_at) - min(created_at)) * 1000)::float8 AS spread
     FROM (SELECT scheduled_at, schedule_id, created_at, (extract(epoch FROM created_at - scheduled_at) * 1000)::float8 AS delay
           FROM stackshift.runs WHERE scheduled_at BETWEEN $1 AND $2) AS r
     GROUP BY scheduled_at ORDER BY scheduled_at`,
    [new Date(firstTick), new Date(lastTick)],
  )
  const ms = (value: number) => `${Math.round(value)} ms`
  console.log(
    `${serverCount} server(s), ${cpus().length} cores, load average ${Math.min(...loadDuring).toFixed(1)}-${Math.max(...loadDuring).toFixed(1)} while firing`,
  )
  for (const row of rows) {
    const tick = row.tick.getTime()
    const committed = commits.filter((at) => at >= tick && at < tick + 60_000)
    console.log(
      `tick ${row.tick.toISOString()}: ${row.runs} runs (${row.ticks} schedules); delay from tick to insert p50 ${ms(row.p50)}, ` +
        `p95 ${ms(row.p95)}, p99 ${ms(row.p99)}, max ${ms(row.max)}; ${committed.length} batches committed, ` +
        `the first ${ms(Math.min(...committed) - tick)} and the last ${ms(Math.max(...committed) - tick)} after the tick`,
    )
  }
  const missing = rows.length === minutes ? rows.filter((row) => row.runs !== scheduleCount).length : minutes
  if (missing > 0) {
    console.error(`expected ${scheduleCount} runs at each of ${minutes} ticks`)
    process.exitCode = 1
  }
} finally {
  for (const server of servers) await server.stop()
  await db.destroy()
  await postgres.stop()
  await rm(dir, { recursive: true, force: true })
}
