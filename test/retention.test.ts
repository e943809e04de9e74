import { expect, it } from 'vitest'
import { useTestEnvironment } from './support/environment.js'
import { waitUntil } from './support/wait-until.js'

/*
 * The retention sweep deletes finished runs, with their steps and attempts,
 * and events, once they are older than STACKSHIFT_RETENTION_MS. Time moves by
 * back-dating rows: a run's id carries its creation time (UUIDv7) and bounds
 * the sweep's scan, so a run is moved into the past with its id.
 */

const dayMs = 86_400_000
const env = useTestEnvironment({ retentionMs: dayMs, retentionIntervalMs: 1000 })

/** `id` with the creation time in its first 48 bits moved `ms` earlier. */
function backDatedRunId(id: string, ms: number): string {
  const hex = id.replaceAll('-', '')
  const moved = (parseInt(hex.slice(0, 12), 16) - ms).toString(16).padStart(12, '0') + hex.slice(12)
  return [moved.slice(0, 8), moved.slice(8, 12), moved.slice(12, 16), moved.slice(16, 20), moved.slice(20)].join('-')
}

/**
 * Moves a run `ms` into the past: its id and creation time, and, with
 * `isFinishedThen`, every later time of it and of its steps and attempts.
 * Returns its new id.
 */
async function backDateRun(id: string, ms: number, isFinishedThen: boolean): Promise<string> {
  const movedId = backDatedRunId(id, ms)
  const laterMs = isFinishedThen ? ms : 0
  await env.db.query('BEGIN')
  await env.db.query(
    `UPDATE stackshift.runs SET id = $2, created_at = created_at - $3 * interval '1 millisecond',
       available_at = available_at - $4 * interval '1 millisecond', started_at = started_at - $4 * interval '1 millisecond',
       finished_at = finished_at - $4 * interval '1 millisecond'
     WHERE id = $1`,
    [id, movedId, ms, laterMs],
  )
  for (const table of ['steps', 'attempts']) {
    await env.db.query(
      `UPDATE stackshift.${table} SET run_id = $2, started_at = started_at - $3 * interval '1 millisecond',
         finished_at = finished_at - $3 * interval '1 millisecond'
       WHERE run_id = $1`,
      [id, movedId, laterMs],
    )
  }
  await env.db.query('COMMIT')
  return movedId
}

async function rowsOf(runId: string): Promise<{ runs: number; steps: number; attempts: number }> {
  const { rows } = await env.db.query<{ runs: number; steps: number; attempts: number }>(
    `SELECT (SELECT count(*)::int FROM stackshift.runs WHERE id = $1) AS runs,
            (SELECT count(*)::int FROM stackshift.steps WHERE run_id = $1) AS steps,
            (SELECT count(*)::int FROM stackshift.attempts WHERE run_id = $1) AS attempts`,
    [runId],
  )
  return rows[0]!
}

it('finished runs older than the retention period are deleted with their steps and attempts; newer and unfinished ones are kept', async () => {
  let calls = 0
  // Fails its first attempt (an attempts row), then completes after a step.
  env.stackshift.job('secondTime', async ({ step, run }) => {
    calls++
    await step.run('work', () => run.attempt)
    if (run.attempt === 1) throw new Error('first attempt fails')
    return 'done'
  })
  env.stackshift.job('fails', () => {
    throw new Error('for good')
  })
  await env.startWorker({ queues: ['kept-or-not'], jobs: ['secondTime', 'fails'] })
  const queue = env.stackshift.queue('kept-or-not')
  const finish = async (job: string, maxAttempts: number) => {
    const { id } = await queue.enqueue(job, {}, { maxAttempts })
    return (await env.stackshift.waitForRun(id)).id
  }
  const completed = await finish('secondTime', 2)
  const failed = await finish('fails', 1)
  const finishedRecently = await finish('secondTime', 2)
  const completedRecently = await finish('secondTime', 2)
  // No worker takes these.
  const cancelled = (await env.stackshift.cancelRun((await env.stackshift.queue('idle').enqueue('never', {})).id)).id
  const stillQueued = (await env.stackshift.queue('idle').enqueue('never', {})).id
  expect(calls).toBe(6)
  expect(await rowsOf(completed)).toEqual({ runs: 1, steps: 1, attempts: 1 })

  // Two days pass for the first three: created and finished then.
  const oldCompleted = await backDateRun(completed, 2 * dayMs, true)
  const oldFailed = await backDateRun(failed, 2 * dayMs, true)
  const oldCancelled = await backDateRun(cancelled, 2 * dayMs, true)
  // Created two days ago, but finished (or not at all) only now: within the period.
  const oldButFinishedRecently = await backDateRun(finishedRecently, 2 * dayMs, false)
  const oldButQueued = await backDateRun(stillQueued, 2 * dayMs, false)

  await waitUntil(
    async () => Promise.all([oldCompleted, oldFailed, oldCancelled].map(rowsOf)),
    (left) => left.every((rows) => rows.runs + rows.steps + rows.attempts === 0),
  )
  // One statement deleted those and passed over these.
  expect(await rowsOf(oldButFinishedRecently)).toEqual({ runs: 1, steps: 1, attempts: 1 })
  expect(await rowsOf(completedRecently)).toEqual({ runs: 1, steps: 1, attempts: 1 })
  expect(await rowsOf(oldButQueued)).toEqual({ runs: 1, steps: 0, attempts: 0 })
  expect((await env.stackshift.getRun(oldButQueued)).status).toBe('queued')
})

it('events older than the retention period are deleted, and their ids can be sent again', async () => {
  await env.stackshift.sendEvent('retained.ping', { n: 1 }, { id: 'old-ping' })
  await env.stackshift.sendEvent('retained.ping', { n: 2 }, { id: 'new-ping' })
  expect((await env.stackshift.sendEvent('retained.ping', { n: 1 }, { id: 'old-ping' })).deduplicated).toBe(true)
  await env.db.query(`UPDATE stackshift.events SET received_at = received_at - interval '2 days' WHERE id = 'old-ping'`)

  const ids = async () => (await env.db.query<{ id: string }>(`SELECT id FROM stackshift.events ORDER BY id`)).rows.map((row) => row.id)
  await waitUntil(ids, (left) => !left.includes('old-ping'))
  expect(await ids()).toEqual(['new-ping'])
  const again = await env.stackshift.sendEvent('retained.ping', { n: 3 }, { id: 'old-ping' })
  expect([again.deduplicated, again.event.data]).toEqual([false, { n: 3 }])
})
