import { StackShift, WaitForRunTimeoutError } from '@stackshift/sdk'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createTestDatabase } from './support/database.js'
import { type TestServer, startTestServer } from './support/server.js'

let server: TestServer
let stackshift: StackShift

beforeAll(async () => {
  server = await startTestServer(await createTestDatabase())
  stackshift = new StackShift({ address: server.address })
})

afterAll(async () => {
  stackshift.close()
  await server.stop()
})

it('waitForRun throws WaitForRunTimeoutError when the run does not finish in time', async () => {
  const run = await stackshift.queue('nobody-listens').enqueue('neverRuns', {})
  const error = await stackshift.waitForRun(run.id, { timeoutMs: 300 }).catch((e: unknown) => e)
  expect(error).toBeInstanceOf(WaitForRunTimeoutError)
  expect((error as Error).message).toBe(`run ${run.id} did not finish within 300 ms (it is queued)`)
})

it('waitForRun returns a failed run rather than throwing', async () => {
  stackshift.job('fails', () => {
    throw new Error('nope')
  })
  const worker = stackshift.worker({ queues: ['w'], jobs: ['fails'] })
  await worker.start()
  try {
    const run = await stackshift.queue('w').enqueue('fails', {}, { maxAttempts: 1 })
    const done = await stackshift.waitForRun(run.id)
    expect(done).toMatchObject({ status: 'failed', attempts: 1, error: { name: 'Error', message: 'nope' } })
  } finally {
    await worker.stop()
  }
})

it('waitForRun and getRun return the same shape, with steps', async () => {
  stackshift.job('twoSteps', async ({ step }) => {
    await step.run('one', () => 1)
    await step.run('two', () => 2)
    return 'ok'
  })
  const worker = stackshift.worker({ queues: ['w'], jobs: ['twoSteps'] })
  await worker.start()
  try {
    const run = await stackshift.queue('w').enqueue('twoSteps', { n: 1 }, { idempotencyKey: 'shape' })
    const waited = await stackshift.waitForRun(run.id)
    const got = await stackshift.getRun(run.id)
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
  } finally {
    await worker.stop()
  }
})
