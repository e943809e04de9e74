import { status } from '@grpc/grpc-js'
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, RunCancelledError } from '@stackshift/sdk'
import { describe, expect, it } from 'vitest'
import { rejectionOf } from './support/raw-client.js'
import { useTestEnvironment } from './support/environment.js'
import { waitUntil } from './support/wait-until.js'

const env = useTestEnvironment()

async function countRows(sqlText: string, values: unknown[] = []): Promise<number> {
  const { rows } = await env.db.query<{ n: number }>(sqlText, values)
  return rows[0]!.n
}

describe('cancelRun', () => {
  it('a queued run ends cancelled at once and is never executed; its idempotency key is released', async () => {
    const executed: string[] = []
    env.stackshift.job('neverRuns', ({ run }) => {
      executed.push(run.id)
    })
    const run = await env.stackshift.queue('cancel-queued').enqueue('neverRuns', {}, { idempotencyKey: 'cancel-me' })
    const cancelled = await env.stackshift.cancelRun(run.id, { reason: 'customer asked' })
    expect(cancelled).toMatchObject({ status: 'cancelled', error: { name: 'CancelledError', message: 'customer asked' } })

    await env.startWorker({ queues: ['cancel-queued'], jobs: ['neverRuns'] })
    const again = await env.stackshift.queue('cancel-queued').enqueue('neverRuns', {}, { idempotencyKey: 'cancel-me' })
    expect(again.deduplicated).toBe(false)
    expect(again.id).not.toBe(run.id)
    // The cancelled run is older: had it still been queued, the worker would have
    // taken it no later than the new one.
    expect((await env.stackshift.waitForRun(again.id)).status).toBe('completed')
    expect(executed).toEqual([again.id])
    const stored = await env.stackshift.getRun(run.id)
    expect(stored).toMatchObject({ status: 'cancelled', attempts: 0, attemptHistory: [] })
  })

  it('a waiting run ends cancelled at once: its sleep ends with it and no timer wakes it', async () => {
    const executions = new Map<string, number>()
    const recordExecution = (id: string) => executions.set(id, (executions.get(id) ?? 0) + 1)
    env.stackshift.job('sleeper', async ({ step, run }) => {
      recordExecution(run.id)
      await step.sleep('long-nap', '1h')
      return 'woke'
    })
    env.stackshift.job('waiter', async ({ step, run }) => {
      recordExecution(run.id)
      await step.waitForEvent('never', { event: 'cancel.never', timeout: '1h' })
      return 'timed out'
    })
    await env.startWorker({ queues: ['cancel-waiting'], jobs: ['sleeper', 'waiter'] })
    const sleeping = await env.stackshift.queue('cancel-waiting').enqueue('sleeper', {})
    const waiting = await env.stackshift.queue('cancel-waiting').enqueue('waiter', {})
    // Not cancelled: shows that the timers fire for the wake times moved below.
    const control = await env.stackshift.queue('cancel-waiting').enqueue('sleeper', {})
    for (const run of [sleeping, waiting, control]) {
      await waitUntil(
        () => env.stackshift.getRun(run.id),
        (current) => current.status === 'waiting',
      )
    }
    const afterCancel = []
    for (const run of [sleeping, waiting]) {
      const cancelled = await env.stackshift.cancelRun(run.id)
      expect(cancelled.status).toBe('cancelled')
      const stored = await env.stackshift.getRun(run.id)
      expect(stored.steps).toMatchObject([{ status: 'failed', error: { name: 'CancelledError' } }])
      afterCancel.push(stored)
    }
    expect(await countRows(`SELECT count(*)::int AS n FROM stackshift.waits`)).toBe(0)
    // The event it waited for finds no one.
    expect((await env.stackshift.sendEvent('cancel.never', {})).resumedRuns).toBe(0)

    // The hour passes for all three (a run's wake time is its available_at): a timer would
    // now wake any of them that still waited.
    const ids = [sleeping.id, waiting.id, control.id]
    await env.db.query(`UPDATE stackshift.runs SET available_at = now() - interval '1 second' WHERE id = ANY($1)`, [ids])
    // One timer pass promotes every due run at once: once the control has woken, that pass has seen the other two.
    expect(await env.stackshift.waitForRun(control.id)).toMatchObject({ status: 'completed', result: 'woke' })
    // The cancelled runs are as they were, but for the time moved above.
    for (const stored of afterCancel) {
      expect(await env.stackshift.getRun(stored.id)).toEqual({ ...stored, availableAt: expect.any(Date) as unknown })
    }
    expect(Object.fromEntries(executions)).toEqual({ [sleeping.id]: 1, [waiting.id]: 1, [control.id]: 2 })
  })

  it('a running run: the handler sees signal.aborted, the run ends cancelled, and writes of that attempt are refused', async () => {
    let sawAbort: unknown
    let releaseHandler!: () => void
    const handlerDone = new Promise<void>((resolve) => (releaseHandler = resolve))
    env.stackshift.job('longTask', async ({ step, signal }) => {
      await step.run('first', () => 'stored')
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
      sawAbort = signal.reason
      try {
        await step.run('after-cancel', () => 'must not be stored')
      } finally {
        releaseHandler()
      }
    })
    await env.startWorker({ queues: ['cancel-running'], jobs: ['longTask'] })
    const run = await env.stackshift.queue('cancel-running').enqueue('longTask', {})
    await waitUntil(
      () => env.stackshift.getRun(run.id),
      (current) => current.steps.length === 1,
    )
    const { rows } = await env.db.query<{ token: string }>(`SELECT lease_token::text AS token FROM stackshift.runs WHERE id = $1`, [run.id])
    const leaseToken = rows[0]!.token

    const cancelled = await env.stackshift.cancelRun(run.id, { reason: 'no longer needed' })
    expect(cancelled.status).toBe('cancelled')
    await handlerDone
    expect(sawAbort).toBeInstanceOf(RunCancelledError)
    expect((sawAbort as Error).message).toBe(`run ${run.id} was cancelled`)

    // A write under the cancelled attempt's lease, straight through the protocol, is refused.
    const refused = await rejectionOf(
      env.raw.workers('CompleteStep', { run_id: run.id, lease_token: leaseToken, step_id: 'late', result_json: '1' }),
    )
    expect(refused.code).toBe(status.FAILED_PRECONDITION)
    const stored = await env.stackshift.getRun(run.id)
    expect(stored.status).toBe('cancelled')
    expect(stored.steps.map((step) => step.id)).toEqual(['first'])
    expect(stored.attemptHistory.map((attempt) => attempt.outcome)).toEqual(['cancelled'])
  })

  it('a run a worker holds prefetched, not started yet, is dropped by the worker and never executed', async () => {
    const executed: number[] = []
    let firstAborted!: () => void
    const firstStopped = new Promise<void>((resolve) => (firstAborted = resolve))
    env.stackshift.job<{ n: number }>('heldBack', async ({ payload, signal }) => {
      executed.push(payload.n)
      if (payload.n === 0) {
        await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
        firstAborted()
      }
    })
    await env.startWorker({ queues: ['cancel-held'], jobs: ['heldBack'], concurrency: 1, prefetch: 3 })
    const first = await env.stackshift.queue('cancel-held').enqueue('heldBack', { n: 0 })
    await waitUntil(
      () => executed.length,
      (n) => n === 1,
    )
    const held = await env.stackshift.queue('cancel-held').enqueueMany([1, 2, 3].map((n) => ({ job: 'heldBack', payload: { n } })))
    await waitUntil(
      async () => (await env.stackshift.listRuns({ queue: 'cancel-held', status: 'running' })).runs.length,
      (n) => n === 4,
    )
    await env.stackshift.cancelRun(held[1]!.id)
    // Cancellations reach the worker in order: once the running handler hears
    // its own, the worker has already dropped the held run.
    await env.stackshift.cancelRun(first.id)
    await firstStopped
    for (const run of [held[0]!, held[2]!]) expect((await env.stackshift.waitForRun(run.id)).status).toBe('completed')
    expect((await env.stackshift.getRun(held[1]!.id)).status).toBe('cancelled')
    expect(executed).toEqual([0, 1, 3])
  })

  it('cancelling a finished run is a FailedPreconditionError; an unknown run is a NotFoundError', async () => {
    env.stackshift.job('quick', () => 'done')
    await env.startWorker({ queues: ['cancel-finished'], jobs: ['quick'] })
    const run = await env.stackshift.queue('cancel-finished').enqueue('quick', {})
    await env.stackshift.waitForRun(run.id)
    const finished = await env.stackshift.cancelRun(run.id).catch((error: unknown) => error)
    expect(finished).toBeInstanceOf(FailedPreconditionError)
    expect((finished as Error).message).toMatch(/already completed/)
    expect((await env.stackshift.getRun(run.id)).status).toBe('completed')

    await expect(env.stackshift.cancelRun('0190b7a6-0000-7000-8000-000000000000')).rejects.toBeInstanceOf(NotFoundError)
    await expect(env.stackshift.cancelRun('not-a-run')).rejects.toBeInstanceOf(NotFoundError)
  })
})

describe('listRuns', () => {
  it('pages newest first with a cursor and filters by queue, job and status', async () => {
    const queue = env.stackshift.queue('listing')
    const ids: string[] = []
    for (let i = 0; i < 7; i++) ids.push((await queue.enqueue(i % 2 === 0 ? 'even' : 'odd', { i })).id)
    const pages: string[][] = []
    let cursor: string | undefined
    do {
      const page = await env.stackshift.listRuns({ queue: 'listing', limit: 3, cursor })
      pages.push(page.runs.map((run) => run.id))
      cursor = page.nextCursor
    } while (cursor)
    expect(pages.map((page) => page.length)).toEqual([3, 3, 1])
    expect(pages.flat()).toEqual([...ids].reverse())

    const odd = await env.stackshift.listRuns({ queue: 'listing', job: 'odd' })
    expect(odd.runs.map((run) => run.payload)).toEqual([{ i: 5 }, { i: 3 }, { i: 1 }])
    expect(odd.nextCursor).toBeUndefined()
    expect((await env.stackshift.listRuns({ queue: 'listing', status: 'queued' })).runs).toHaveLength(7)
    expect((await env.stackshift.listRuns({ queue: 'listing', status: 'waiting' })).runs).toHaveLength(0)
    const future = await env.stackshift.listRuns({ queue: 'listing', createdAfter: new Date(Date.now() + 60_000) })
    expect(future.runs).toHaveLength(0)
  })

  it('a bad cursor or page size is an InvalidArgumentError naming the field', async () => {
    await expect(env.stackshift.listRuns({ cursor: 'garbage' })).rejects.toThrow(
      new InvalidArgumentError('cursor: is not a cursor returned by ListRuns'),
    )
    await expect(env.stackshift.listRuns({ limit: 501 })).rejects.toThrow(new InvalidArgumentError('limit: must be at most 500'))
  })
})

describe('bad input to waits and events: clear errors, nothing stored', () => {
  it('a timeout of "-5m" or "soon", or a match that is not an object, fails the step before anything is sent', async () => {
    const messages: string[] = []
    env.stackshift.job<{ variant: number }>('badWait', async ({ payload, step }) => {
      const options = [
        { event: 'bad.wait', timeout: '-5m' },
        { event: 'bad.wait', timeout: 'soon' },
        { event: 'bad.wait', timeout: '1h', match: 'orderId' as unknown as Record<string, unknown> },
      ][payload.variant]!
      try {
        await step.waitForEvent('wait', options)
      } catch (error) {
        messages[payload.variant] = `${(error as Error).name}: ${(error as Error).message}`
        return 'caught'
      }
      return 'not refused'
    })
    await env.startWorker({ queues: ['bad-waits'], jobs: ['badWait'] })
    const runs = await env.stackshift.queue('bad-waits').enqueueMany([0, 1, 2].map((variant) => ({ job: 'badWait', payload: { variant } })))
    for (const run of runs) {
      const done = await env.stackshift.waitForRun(run.id)
      expect(done.result).toBe('caught')
      expect(done.steps).toEqual([])
    }
    expect(messages).toEqual([
      'InvalidArgumentError: step.waitForEvent("wait") options.timeout must be a duration like "500ms", "30s", "10m", "1h" or "7d", got "-5m"',
      'InvalidArgumentError: step.waitForEvent("wait") options.timeout must be a duration like "500ms", "30s", "10m", "1h" or "7d", got "soon"',
      'InvalidArgumentError: step.waitForEvent("wait") options.match must be an object of fields to match, got string',
    ])
    expect(await countRows(`SELECT count(*)::int AS n FROM stackshift.waits`)).toBe(0)
  })

  it('an event name of 2,000 characters is refused by sendEvent and by a wait', async () => {
    const longName = 'e'.repeat(2000)
    await expect(env.stackshift.sendEvent(longName, {})).rejects.toThrow(new InvalidArgumentError('name: must be at most 200 characters'))
    expect(await countRows(`SELECT count(*)::int AS n FROM stackshift.events WHERE length(name) > 200`)).toBe(0)

    let refusal: unknown
    env.stackshift.job('longWait', async ({ step }) => {
      refusal = await step.waitForEvent('wait', { event: longName, timeout: '1m' }).catch((error: unknown) => error)
      return 'refused'
    })
    await env.startWorker({ queues: ['long-wait'], jobs: ['longWait'] })
    const run = await env.stackshift.queue('long-wait').enqueue('longWait', {})
    expect((await env.stackshift.waitForRun(run.id)).steps).toEqual([])
    expect(refusal).toBeInstanceOf(InvalidArgumentError)
    expect((refusal as Error).message).toBe('suspend_run.event.name: must be at most 200 characters')
  })

  it('through the protocol: a match_json that is not an object, a negative timeout and a missing wait are INVALID_ARGUMENT', async () => {
    await env.raw.runs('Enqueue', { run: { queue: 'raw-waits', job: 'rawWait', payload_json: '{}' } })
    const { tasks } = await env.raw.workers('ClaimTask', { queues: ['raw-waits'], jobs: ['rawWait'], max_tasks: 1 })
    const lease = { run_id: tasks[0]!.run_id, lease_token: tasks[0]!.lease_token, step_id: 'w' }
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ event: { name: 'x', match_json: '[1]', timeout_ms: 1000 } }, 'event.match_json: must be a JSON object'],
      [{ event: { name: 'x', match_json: '{}', timeout_ms: -5 } }, 'event.timeout_ms: must be at least 1'],
      [{}, 'wait: must set sleep, event or invoke'],
    ]
    for (const [wait, message] of cases) {
      const error = await rejectionOf(env.raw.workers('SuspendRun', { ...lease, ...wait }))
      expect([error.code, error.details]).toEqual([status.INVALID_ARGUMENT, message])
    }
    expect(await countRows(`SELECT count(*)::int AS n FROM stackshift.steps WHERE run_id = $1`, [lease.run_id])).toBe(0)
    expect((await env.stackshift.getRun(lease.run_id)).status).toBe('running')
  })
})
