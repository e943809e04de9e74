import { WaitForRunTimeoutError } from '@stackshift/sdk'
import { expect, it } from 'vitest'
import { waitUntil } from './support/wait-until.js'
import { useTestEnvironment } from './support/environment.js'

const env = useTestEnvironment()

it('waitForRun throws WaitForRunTimeoutError when the run does not finish in time', async () => {
  const run = await env.stackshift.queue('nobody-listens').enqueue('neverRuns', {})
  const error = await env.stackshift.waitForRun(run.id, { timeoutMs: 300 }).catch((e: unknown) => e)
  expect(error).toBeInstanceOf(WaitForRunTimeoutError)
  expect((error as Error).message).toBe(`run ${run.id} did not finish within 300 ms (it is queued)`)
})

it('waitForRun returns a failed run rather than throwing', async () => {
  env.stackshift.job('fails', () => {
    throw new Error('nope')
  })
  await env.startWorker({ queues: ['w'], jobs: ['fails'] })
  const run = await env.stackshift.queue('w').enqueue('fails', {}, { maxAttempts: 1 })
  const done = await env.stackshift.waitForRun(run.id)
  expect(done).toMatchObject({ status: 'failed', attempts: 1, error: { name: 'Error', message: 'nope' } })
})

it('waitForRun and getRun return the same shape, with steps', async () => {
  env.stackshift.job('twoSteps', async ({ step }) => {
    await step.run('one', () => 1)
    await step.run('two', () => 2)
    return 'ok'
  })
  await env.startWorker({ queues: ['w'], jobs: ['twoSteps'] })
  const run = await env.stackshift.queue('w').enqueue('twoSteps', { n: 1 }, { idempotencyKey: 'shape' })
  const waited = await env.stackshift.waitForRun(run.id)
  const got = await env.stackshift.getRun(run.id)
  expect(got).toEqual(waited)
  expect(got).toMatchObject({
    id: run.id,
    namespace: 'default',
    queue: 'w',
    job: 'twoSteps',
    status: 'completed',
    payload: { n: 1 },
    result: 'ok',
    attempts: 1,
    maxAttempts: 5,
    priority: 0,
    idempotencyKey: 'shape',
  })
  expect(got.steps.map((s) => [s.id, s.status, s.result])).toEqual([
    ['one', 'completed', 1],
    ['two', 'completed', 2],
  ])
  expect(got.finishedAt!.getTime()).toBeGreaterThanOrEqual(got.startedAt!.getTime())
})

it('waitForRun returns a run that finished without a finish notice (a lost LISTEN notice): the server rechecks what it waits for', async () => {
  const run = await env.stackshift.queue('silent').enqueue('finishedElsewhere', {})
  const waiting = env.stackshift.waitForRun(run.id, { timeoutMs: 20_000 })
  // Once the wait has marked the run, finish it the way no notice is sent for: with the mark cleared first.
  await waitUntil(
    async () =>
      (await env.db.query<{ has_waiter: boolean }>(`SELECT has_waiter FROM stackshift.runs WHERE id = $1`, [run.id])).rows[0]!.has_waiter,
    Boolean,
    10_000,
  )
  await env.db.query(`UPDATE stackshift.runs SET has_waiter = false WHERE id = $1`, [run.id])
  await env.db.query(`UPDATE stackshift.runs SET status = 'completed', result = '"done"', finished_at = now() WHERE id = $1`, [run.id])
  const finishedAt = Date.now()
  expect(await waiting).toMatchObject({ status: 'completed', result: 'done' })
  // Rechecks come every 2 s; well before the wait's own end, whose last read would have found the run anyway.
  expect(Date.now() - finishedAt).toBeLessThan(15_000)
})
