import type { RunInfo } from '@stackshift/sdk'
import { expect, it } from 'vitest'
import { useTestEnvironment } from './support/environment.js'

const env = useTestEnvironment({ retryBaseMs: 50, retryMaxMs: 100 })

it("a handler's context describes its run and attempt, on every attempt, whichever parts the handler reads", async () => {
  const seen: Array<{ run: RunInfo; payload: unknown; isAborted: boolean }> = []
  env.stackshift.job<{ n: number }>('describesItself', ({ payload, run, signal }) => {
    seen.push({ run, payload, isAborted: signal.aborted })
    if (run.attempt === 1) throw new Error('once more')
    return run.attempt
  })
  env.stackshift.job('readsNothing', () => 'done')
  await env.startWorker({ queues: ['context'], jobs: ['describesItself', 'readsNothing'] })

  const { id } = await env.stackshift.queue('context').enqueue('describesItself', { n: 7 }, { maxAttempts: 3 })
  const done = await env.stackshift.waitForRun(id)
  expect(done.status).toBe('completed')
  expect(done.result).toBe(2)
  const expected = (attempt: number) => ({
    run: {
      id,
      job: 'describesItself',
      queue: 'context',
      namespace: done.namespace,
      attempt,
      maxAttempts: 3,
      // A run id is a UUIDv7: its first 48 bits are the creation time in Unix ms.
      createdAt: new Date(Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16)),
    },
    payload: { n: 7 },
    isAborted: false,
  })
  expect(seen).toEqual([expected(1), expected(2)])

  // A handler that reads nothing from its context still completes with its result.
  const plain = await env.stackshift.waitForRun((await env.stackshift.queue('context').enqueue('readsNothing', {})).id)
  expect(plain).toMatchObject({ status: 'completed', result: 'done', attempts: 1 })
})
