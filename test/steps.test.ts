import { expect, it } from 'vitest'
import { useTestEnvironment } from './support/environment.js'

const env = useTestEnvironment()

it('step.run called three times with one id stores x, x:1 and x:2, and a retry replays all three from the memo', async () => {
  let executions = 0
  env.stackshift.job('loops', async ({ step, run }) => {
    const results: number[] = []
    for (let i = 0; i < 3; i++) {
      results.push(
        await step.run('x', () => {
          executions++
          return i * 10
        }),
      )
    }
    if (run.attempt === 1) throw new Error('fail after the loop')
    return results
  })
  await env.startWorker({ queues: ['steps'], jobs: ['loops'] })

  const done = await env.stackshift.waitForRun((await env.stackshift.queue('steps').enqueue('loops', {})).id)
  expect(done.status).toBe('completed')
  expect(done.attempts).toBe(2)
  expect(done.result).toEqual([0, 10, 20])
  expect(executions).toBe(3)
  expect(done.steps.map((s) => [s.id, s.result, s.attempt])).toEqual([
    ['x', 0, 1],
    ['x:1', 10, 1],
    ['x:2', 20, 1],
  ])
})

it('0, "", false, null and undefined come back from a step as they went in, first time and on replay', async () => {
  const seen: unknown[][] = []
  env.stackshift.job('falsy', async ({ step, run }) => {
    const values = [
      await step.run('zero', () => 0),
      await step.run('empty', () => ''),
      await step.run('false', () => false),
      await step.run('null', () => null),
      await step.run<unknown>('undefined', () => undefined),
      await step.run('date', () => new Date('2026-01-02T03:04:05.000Z')),
    ]
    seen.push(values)
    if (run.attempt === 1) throw new Error('replay, please')
    return { values: values.slice(0, 4), isUndefinedKept: values[4] === undefined }
  })
  await env.startWorker({ queues: ['steps'], jobs: ['falsy'] })

  const done = await env.stackshift.waitForRun((await env.stackshift.queue('steps').enqueue('falsy', {})).id)
  expect(done.status).toBe('completed')
  const expected = [0, '', false, null, undefined, '2026-01-02T03:04:05.000Z']
  expect(seen).toEqual([expected, expected])
  expect(done.result).toEqual({ values: [0, '', false, null], isUndefinedKept: true })
})

it('a handler that returns 0, "", false or null completes with exactly that result', async () => {
  env.stackshift.job<{ value: unknown }>('returnsFalsy', ({ payload }) => payload.value)
  await env.startWorker({ queues: ['steps'], jobs: ['returnsFalsy'] })
  for (const value of [0, '', false, null]) {
    const done = await env.stackshift.waitForRun((await env.stackshift.queue('steps').enqueue('returnsFalsy', { value })).id)
    expect(done.status).toBe('completed')
    expect(done.result).toStrictEqual(value)
  }
})

it('a handler that returns nothing completes with no result', async () => {
  env.stackshift.job('returnsNothing', () => {})
  await env.startWorker({ queues: ['steps'], jobs: ['returnsNothing'] })
  const done = await env.stackshift.waitForRun((await env.stackshift.queue('steps').enqueue('returnsNothing', null)).id)
  expect(done.status).toBe('completed')
  expect(done.result).toBeUndefined()
  expect(done.payload).toBeNull()
})

it('an explicit step id that collides with a repeat suffix fails the attempt with a clear error', async () => {
  env.stackshift.job('collides', async ({ step }) => {
    await step.run('x', () => 1)
    await step.run('x:1', () => 2)
    await step.run('x', () => 3)
  })
  await env.startWorker({ queues: ['steps'], jobs: ['collides'] })
  const done = await env.stackshift.waitForRun((await env.stackshift.queue('steps').enqueue('collides', {}, { maxAttempts: 1 })).id)
  expect(done.status).toBe('failed')
  expect(done.error?.message).toContain('step id "x:1" is used twice')
})

it('steps run in parallel get distinct ids in call order', async () => {
  env.stackshift.job('fansOut', async ({ step }) => Promise.all([1, 2, 3].map((n) => step.run('square', () => n * n))))
  await env.startWorker({ queues: ['steps'], jobs: ['fansOut'] })
  const done = await env.stackshift.waitForRun((await env.stackshift.queue('steps').enqueue('fansOut', {})).id)
  expect(done.result).toEqual([1, 4, 9])
  expect(Object.fromEntries(done.steps.map((s) => [s.id, s.result]))).toEqual({ square: 1, 'square:1': 4, 'square:2': 9 })
})
