/**
 * `npm run bench:list-runs`: ListRuns and a bulk action's count on a million
 * runs. Fills a fresh embedded PostgreSQL with 1,000,000 runs over 28 hours
 * (20 queues, 50 jobs, 1,000 tenants in the payload; 95% completed, 2%
 * failed, 1% cancelled, 2% unfinished), then times each filter through the
 * server's own statements (median of 7, after one to warm the cache) and
 * prints the plan PostgreSQL chose for each. docs/performance.md keeps the
 * results.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { RunFilter } from '../server/src/core/run.js'
import { createDatabase, migrateDatabase, sqlPlannedEachTime } from '../server/src/db/database.js'
import { startEmbeddedPostgres } from '../server/src/db/embedded-postgres.js'
import { newestRunsSql } from '../server/src/db/queries/run-filters.js'
import { runColumns } from '../server/src/db/queries/run-record.js'
import { runList } from '../server/src/db/queries/run-reads.js'
import { createLogger } from '../server/src/logger.js'

const totalRuns = 1_000_000

const dir = await mkdtemp(join(tmpdir(), 'stackshift-list-runs-'))
const postgres = await startEmbeddedPostgres({ dataDir: dir, port: 0, logger: createLogger('warn'), settings: { shared_buffers: '256MB' } })
const db = createDatabase({ url: postgres.url, poolSize: 2 })
try {
  await migrateDatabase(db)
  const started = Date.now()
  // Time-ordered ids (version 7 layout: 48 bits of milliseconds first), one run every 100 ms.
  await db.raw(`
    INSERT INTO stackshift.runs (id, namespace, queue, job, payload, payload_bytes, status, attempt, max_attempts, available_at,
      created_at, started_at, finished_at, idempotency_key)
    SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' || substr(md5(i::text), 1, 3) || '8'
             || substr(md5(i::text), 4, 15))::uuid,
      'default', 'queue-' || (i % 20), 'job-' || (i % 50),
      jsonb_build_object('tenant', jsonb_build_object('id', 't' || (i % 1000)), 'order', i), 40,
      s::stackshift.run_status, 1, 3, t, t, t,
      CASE WHEN s IN ('completed', 'failed', 'cancelled') THEN t + interval '50 ms' END,
      CASE WHEN i % 10 = 0 THEN 'key-' || i END
    FROM generate_series(1, ${totalRuns}) AS i,
      LATERAL (SELECT now() - (${totalRuns} - i) * interval '100 ms' AS t) AS times,
      LATERAL (SELECT CASE WHEN i % 100 < 95 THEN 'completed' WHEN i % 100 < 97 THEN 'failed' WHEN i % 100 < 98 THEN 'cancelled'
                           WHEN i % 100 = 98 THEN 'queued' ELSE 'waiting' END AS s) AS statuses
  `)
  await db.raw('VACUUM ANALYZE stackshift.runs')
  console.log(`${totalRuns.toLocaleString('en')} runs stored in ${((Date.now() - started) / 1000).toFixed(0)} s\n`)

  const { rows: sample } = await db.raw<{ rows: Array<{ id: string }> }>(
    `SELECT id::text AS id FROM stackshift.runs ORDER BY id LIMIT 1 OFFSET ${totalRuns / 2}`,
  )
  const base: RunFilter = {
    namespace: 'default',
    queue: undefined,
    job: undefined,
    status: undefined,
    createdAfter: undefined,
    createdBefore: undefined,
    limit: 50,
    afterId: undefined,
    runId: undefined,
    idempotencyKey: undefined,
    payloadMatchJson: undefined,
    sourceRunId: undefined,
    scheduleId: undefined,
    parentRunId: undefined,
  }
  const hourAgo = new Date(Date.now() - 3_600_000)
  const cases: Array<[string, Partial<RunFilter>]> = [
    ['newest 50, no filter', {}],
    ['by queue', { queue: 'queue-7' }],
    ['by job', { job: 'job-13' }],
    ['by queue and job', { queue: 'queue-7', job: 'job-27' }],
    ['status failed', { status: 'failed' }],
    ['status completed, by queue', { status: 'completed', queue: 'queue-3' }],
    ['status queued', { status: 'queued' }],
    ['payload match (0.1% of runs)', { payloadMatchJson: '{"tenant":{"id":"t42"}}' }],
    ['payload match, no run matches', { payloadMatchJson: '{"tenant":{"id":"nobody"}}' }],
    ['run id', { runId: sample[0]!.id }],
    ['idempotency key', { idempotencyKey: 'key-500000' }],
    ['created in the last hour, by job', { createdAfter: hourAgo, job: 'job-5' }],
    ['page 200 deep (cursor), by queue', { queue: 'queue-7' }],
  ]
  console.log('| filter | runs | median ms | plan |\n| --- | ---: | ---: | --- |')
  for (const [name, filter] of cases) {
    let wanted = { ...base, ...filter }
    if (name.startsWith('page 200')) {
      const { rows } = await db.raw<{ rows: Array<{ id: string }> }>(
        `SELECT id::text AS id FROM stackshift.runs WHERE queue = 'queue-7' ORDER BY id DESC LIMIT 1 OFFSET ${200 * 50}`,
      )
      wanted = { ...wanted, afterId: rows[0]!.id }
    }
    await runList(db, wanted)
    const times: number[] = []
    let found = 0
    for (let i = 0; i < 7; i++) {
      const start = process.hrtime.bigint()
      found = (await runList(db, wanted)).length
      times.push(Number(process.hrtime.bigint() - start) / 1e6)
    }
    times.sort((a, b) => a - b)
    const values: unknown[] = []
    const text = newestRunsSql(runColumns, { ...wanted, idBelow: wanted.afterId }, values, wanted.limit)
    const plan = await sqlPlannedEachTime<{ 'QUERY PLAN': string }>(db, `EXPLAIN (COSTS OFF) ${text}`, values)
    const summary = plan
      .map((row) => row['QUERY PLAN'].trim())
      .filter((line) => /Scan|Append|Merge|Sort|Limit/.test(line))
      .map((line) => line.replace(/^->\s*/, '').replace(/ on runs$/, ''))
      .join(' › ')
    console.log(`| ${name} | ${found} | ${times[3]!.toFixed(1)} | ${summary} |`)
  }
} finally {
  await db.destroy()
  await postgres.stop()
  await rm(dir, { recursive: true, force: true })
}
