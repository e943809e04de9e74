import { type JobContext, type JobPolicies, StackShift, type Worker, replaceAsyncResourceBind } from '@stackshift/sdk'
import pg from 'pg'
import type { BenchConfig, ProbeHandler, ProbePayload, SystemAdapter } from './adapter.js'

const queue = 'bench'

/**
 * StackShift: the SDK's client and worker, against a server process the
 * harness runs (with its helper threads at idle priority, see run.ts). This
 * process opts in to the SDK's tuning, as the report says: Node's
 * AsyncResource.prototype.bind replaced (README "Tuning").
 */
export function createStackShiftAdapter(config: BenchConfig): SystemAdapter {
  replaceAsyncResourceBind()
  const stackshift = new StackShift({ address: config.stackshiftAddress! })
  const db = new pg.Client({ connectionString: config.databaseUrl })
  let worker: Worker | undefined
  /** Policies by job (configurePolicies), which the workers declare too. */
  const policies = new Map<string, JobPolicies>()

  async function startWorker() {
    worker = stackshift.worker({ queues: [queue], concurrency: config.concurrency })
    await worker.start()
  }

  return {
    async install() {
      // The server process migrated the database before this process started.
      await db.connect()
    },
    async preloadHistory(job, count) {
      // Finished runs as the server keeps them: completed, with ids (UUIDv7)
      // from a day earlier, so they sort before the runs of the workload.
      await db.query(
        `INSERT INTO stackshift.runs (id, namespace, queue, job, status, attempt, max_attempts, available_at, created_at, started_at, finished_at, payload, result)
         SELECT (lpad(to_hex(ms), 12, '0') || '7' || lpad(to_hex(i % 4096), 3, '0') || '8' || lpad(to_hex(i), 15, '0'))::uuid,
           'default', $1, $2, 'completed', 1, 5, t, t, t, t, jsonb_build_object('i', i), 'null'::jsonb
         FROM generate_series(1, $3::int) AS i,
           LATERAL (SELECT (extract(epoch FROM now() - interval '1 day') * 1000)::bigint + i AS ms) AS m,
           LATERAL (SELECT to_timestamp(ms / 1000.0) AS t) AS ts`,
        [queue, job, count],
      )
      await db.query('VACUUM ANALYZE stackshift.runs')
    },
    async enqueueBulk(job, payloads) {
      await stackshift.queue(queue).enqueueMany(payloads.map((payload) => ({ job, payload })))
    },
    async enqueueOne(job, payload) {
      await stackshift.queue(queue).enqueue(job, payload)
    },
    async startWorker(job, handler: ProbeHandler) {
      const jobPolicies = policies.get(job)
      const run = ({ payload }: { payload: ProbePayload }) => handler(payload)
      if (jobPolicies) stackshift.job<ProbePayload>(job, jobPolicies, run)
      else stackshift.job<ProbePayload>(job, run)
      await startWorker()
    },
    async startThreeStepWorker(onDone) {
      const threeSteps = async ({ step }: JobContext<unknown>) => {
        await step.run('first', () => 1)
        await step.run('second', () => 2)
        await step.run('third', () => 3)
        onDone()
      }
      const jobPolicies = policies.get('threeSteps')
      if (jobPolicies) stackshift.job('threeSteps', jobPolicies, threeSteps)
      else stackshift.job('threeSteps', threeSteps)
      await startWorker()
    },
    async configurePolicies(job, jobPolicies) {
      policies.set(job, jobPolicies)
      await stackshift.configureJob(job, jobPolicies)
    },
    async enqueueThreeStepJobs(count) {
      for (let start = 0; start < count; start += 10_000) {
        const size = Math.min(10_000, count - start)
        await stackshift
          .queue(queue)
          .enqueueMany(Array.from({ length: size }, (_, i) => ({ job: 'threeSteps', payload: { i: start + i } })))
      }
    },
    async unfinished() {
      // Both counts read partial indexes (runs_ready, runs_leased): no table scan. Runs under flow control are in runs_ready too.
      const { rows } = await db.query<{ n: string }>(
        `SELECT (SELECT count(*) FROM stackshift.runs WHERE status = 'queued' AND namespace = 'default' AND queue = $1)
              + (SELECT count(*) FROM stackshift.runs WHERE status = 'running') AS n`,
        [queue],
      )
      return Number(rows[0]!.n)
    },
    async stopWorker() {
      await worker?.stop()
      worker = undefined
    },
    async close() {
      stackshift.close()
      await db.end()
    },
  }
}
