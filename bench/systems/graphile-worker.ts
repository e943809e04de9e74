import { Logger, type Runner, type TaskList, type WorkerUtils, makeWorkerUtils, run, runMigrations } from 'graphile-worker'
import pg from 'pg'
import type { BenchConfig, ProbeHandler, ProbePayload, SystemAdapter } from './adapter.js'

const silentLogger = new Logger(() => () => {})

/**
 * graphile-worker. `default`: its defaults, with concurrency and pool size
 * matched to StackShift's. `tuned`: the batching its performance guide
 * recommends (a local queue of 500 jobs, completions and failures batched
 * with no delay, a pool of concurrency + 1).
 */
export function createGraphileWorkerAdapter(config: BenchConfig, variant: 'default' | 'tuned'): SystemAdapter {
  const db = new pg.Client({ connectionString: config.databaseUrl })
  let utils: WorkerUtils | undefined
  let runner: Runner | undefined
  // Jobs of the workload have ids above this; history (if any) below.
  let firstWorkloadId = 0

  const options = () =>
    variant === 'tuned'
      ? {
          concurrency: config.concurrency,
          maxPoolSize: config.concurrency + 1,
          preset: { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
        }
      : { concurrency: config.concurrency, maxPoolSize: config.poolSize }

  async function start(taskList: TaskList) {
    runner = await run({ connectionString: config.databaseUrl, noHandleSignals: true, logger: silentLogger, taskList, ...options() })
  }

  return {
    async install() {
      await db.connect()
      await runMigrations({ connectionString: config.databaseUrl, logger: silentLogger })
      utils = await makeWorkerUtils({ connectionString: config.databaseUrl, logger: silentLogger })
      // W4's history was loaded by another process (see child.ts): jobs up to here are history.
      // bigint: pg returns it as a string.
      const { rows } = await db.query<{ id: string }>('SELECT coalesce(max(id), 0) AS id FROM graphile_worker._private_jobs')
      firstWorkloadId = Number(rows[0]!.id)
    },
    async preloadHistory(job, count) {
      // graphile-worker deletes completed jobs; what it keeps is jobs that
      // failed permanently (attempts = max_attempts). Those stand for history.
      await db.query(`INSERT INTO graphile_worker._private_tasks (identifier) VALUES ($1) ON CONFLICT DO NOTHING`, [job])
      await db.query(
        `INSERT INTO graphile_worker._private_jobs (task_id, payload, attempts, max_attempts, last_error, run_at, created_at, updated_at)
         SELECT t.id, json_build_object('i', i), 1, 1, 'failed', now() - interval '1 day', now() - interval '1 day', now() - interval '1 day'
         FROM generate_series(1, $2::int) AS i, graphile_worker._private_tasks t WHERE t.identifier = $1`,
        [job, count],
      )
      await db.query('VACUUM ANALYZE graphile_worker._private_jobs')
    },
    async enqueueBulk(job, payloads) {
      await utils!.addJobs(payloads.map((payload) => ({ identifier: job, payload })))
    },
    async enqueueOne(job, payload) {
      await utils!.addJob(job, payload)
    },
    async startWorker(job, handler: ProbeHandler) {
      await start({ [job]: (payload) => handler(payload as ProbePayload) })
    },
    async startThreeStepWorker(onDone) {
      await start({
        step1: async (payload, helpers) => {
          await helpers.addJob('step2', payload)
        },
        step2: async (payload, helpers) => {
          await helpers.addJob('step3', payload)
        },
        step3: () => {
          onDone()
        },
      })
    },
    async enqueueThreeStepJobs(count) {
      for (let start = 0; start < count; start += 10_000) {
        const size = Math.min(10_000, count - start)
        await utils!.addJobs(Array.from({ length: size }, (_, i) => ({ identifier: 'step1', payload: { i: start + i } })))
      }
    },
    async unfinished() {
      // Completed jobs are deleted: what is left above the history is unfinished (a primary-key range).
      const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM graphile_worker._private_jobs WHERE id > $1', [
        firstWorkloadId,
      ])
      return Number(rows[0]!.n)
    },
    async stopWorker() {
      await runner?.stop()
      runner = undefined
    },
    async close() {
      await utils?.release()
      await db.end()
    },
  }
}
