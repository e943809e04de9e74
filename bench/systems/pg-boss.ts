import { PgBoss, type WorkOptions } from 'pg-boss'
import pg from 'pg'
import type { BenchConfig, ProbeHandler, SystemAdapter } from './adapter.js'

const queues = ['noop', 'probe', 'step1', 'step2', 'step3']

/**
 * pg-boss. `default`: its defaults (one job per fetch, 2 s polling), with
 * concurrency (localConcurrency) and pool size matched to StackShift's.
 * `tuned`: LISTEN/NOTIFY on (instance and queues), fetches of 50 jobs by
 * `concurrency / 50` workers (at least 2) that keep fetching while batches
 * come back full, and the shortest polling interval it allows.
 */
export function createPgBossAdapter(config: BenchConfig, variant: 'default' | 'tuned'): SystemAdapter {
  const db = new pg.Client({ connectionString: config.databaseUrl })
  const boss = new PgBoss({ connectionString: config.databaseUrl, max: config.poolSize, useListenNotify: variant === 'tuned' })
  boss.on('error', (error: Error) => console.error(`pg-boss error: ${error.message}`))
  const working: string[] = []
  const batchSize = 50

  const workOptions: WorkOptions =
    variant === 'tuned'
      ? {
          batchSize,
          localConcurrency: Math.max(2, Math.round(config.concurrency / batchSize)),
          burstWhenBatchFull: true,
          pollingIntervalSeconds: 0.5,
        }
      : { localConcurrency: config.concurrency }

  async function work(name: string, handle: (data: Record<string, unknown>) => Promise<void> | void, forward?: string) {
    working.push(name)
    await boss.work<Record<string, unknown>>(name, workOptions, async (jobs) => {
      if (forward)
        await boss.insert(
          forward,
          jobs.map((job) => ({ data: job.data })),
        )
      for (const job of jobs) await handle(job.data)
    })
  }

  return {
    async install() {
      await db.connect()
      await boss.start()
      for (const name of queues) await boss.createQueue(name, { notify: variant === 'tuned' })
    },
    async preloadHistory(job, count) {
      // pg-boss keeps completed jobs in its job table (until their retention ends).
      await db.query(
        `INSERT INTO pgboss.job (name, data, state, created_on, started_on, completed_on)
         SELECT $1, jsonb_build_object('i', i), 'completed', now() - interval '1 day', now() - interval '1 day', now() - interval '1 day'
         FROM generate_series(1, $2::int) AS i`,
        [job, count],
      )
      await db.query('VACUUM ANALYZE pgboss.job_common')
    },
    async enqueueBulk(job, payloads) {
      await boss.insert(
        job,
        payloads.map((data) => ({ data })),
      )
    },
    async enqueueOne(job, payload) {
      await boss.send(job, payload)
    },
    async startWorker(job, handler: ProbeHandler) {
      await work(job, (data) => handler(data))
    },
    async startThreeStepWorker(onDone) {
      await work('step1', () => {}, 'step2')
      await work('step2', () => {}, 'step3')
      await work('step3', () => onDone())
    },
    async enqueueThreeStepJobs(count) {
      for (let start = 0; start < count; start += 10_000) {
        const size = Math.min(10_000, count - start)
        await boss.insert(
          'step1',
          Array.from({ length: size }, (_, i) => ({ data: { i: start + i } })),
        )
      }
    },
    async unfinished() {
      // Reads pg-boss's own (name, state, ...) partial index.
      const { rows } = await db.query<{ n: string }>(
        `SELECT count(*) AS n FROM pgboss.job WHERE name = ANY($1) AND state IN ('created', 'retry', 'active')`,
        [queues],
      )
      return Number(rows[0]!.n)
    },
    async stopWorker() {
      for (const name of working.splice(0)) await boss.offWork(name, { wait: true })
    },
    async close() {
      await boss.stop({ graceful: true, timeout: 10_000 })
      await db.end()
    },
  }
}
