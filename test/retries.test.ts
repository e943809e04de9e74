import { NonRetriableError, RetryAfterError, type Run, StackShift } from '@stackshift/sdk'
import { expect, it } from 'vitest'
import { connect, createTestDatabase } from './support/database.js'
import { useTestEnvironment } from './support/environment.js'
import { startTestServer } from './support/server.js'
import { waitUntil } from './support/wait-until.js'

const retryBaseMs = 200

const env = useTestEnvironment({ retryBaseMs, retryMaxMs: 10_000 })

function gapMs(earlier: Date | undefined, later: Date | undefined): number {
  return later!.getTime() - earlier!.getTime()
}

/**
 * The backoff the server chose after the run's last failed attempt: from when
 * that attempt ended to when the run is due again. Both are written by one
 * statement, on the database clock, so this is the delay itself (to the ms).
 */
function storedBackoffMs(run: Run): number {
  return gapMs(run.attemptHistory.at(-1)!.finishedAt, run.availableAt)
}

it('a job that always throws ends failed after its max attempts, with the backoff visible in the attempt times', async () => {
  let calls = 0
  env.stackshift.job('alwaysThrows', () => {
    calls++
    throw new TypeError(`upstream said no (call ${calls})`)
  })
  await env.startWorker({ queues: ['flaky'], jobs: ['alwaysThrows'] })

  const run = await env.stackshift.queue('flaky').enqueue('alwaysThrows', {}, { maxAttempts: 4 })
  const done = await env.stackshift.waitForRun(run.id)

  expect(done.status).toBe('failed')
  expect(done.attempts).toBe(4)
  expect(calls).toBe(4)
  expect(done.error).toMatchObject({ name: 'TypeError', message: 'upstream said no (call 4)' })
  expect(done.attemptHistory.map((a) => [a.attempt, a.outcome, a.error?.message])).toEqual([
    [1, 'failed', 'upstream said no (call 1)'],
    [2, 'failed', 'upstream said no (call 2)'],
    [3, 'failed', 'upstream said no (call 3)'],
    [4, 'failed', 'upstream said no (call 4)'],
  ])
  // Exponential backoff with jitter: the wait before attempt n+1 is at least
  // half of base * 2^(n-1) (database clock on both ends).
  const history = done.attemptHistory
  for (let n = 1; n < history.length; n++) {
    const minimumMs = (retryBaseMs * 2 ** (n - 1)) / 2
    expect(gapMs(history[n - 1]!.finishedAt, history[n]!.startedAt)).toBeGreaterThanOrEqual(minimumMs)
  }
})

it('NonRetriableError fails the run on the first attempt', async () => {
  let calls = 0
  env.stackshift.job('rejectsForGood', () => {
    calls++
    throw new NonRetriableError('the account is closed')
  })
  await env.startWorker({ queues: ['flaky'], jobs: ['rejectsForGood'] })

  const run = await env.stackshift.queue('flaky').enqueue('rejectsForGood', {}, { maxAttempts: 5 })
  const done = await env.stackshift.waitForRun(run.id)

  expect(done.status).toBe('failed')
  expect(done.attempts).toBe(1)
  expect(calls).toBe(1)
  expect(done.error).toMatchObject({ name: 'NonRetriableError', message: 'the account is closed' })
})

it('NonRetriableError thrown inside a step fails the run at once and records the failed step', async () => {
  env.stackshift.job('stepRejects', async ({ step }) => {
    await step.run('charge-card', () => {
      throw new NonRetriableError('card expired')
    })
  })
  await env.startWorker({ queues: ['flaky'], jobs: ['stepRejects'] })

  const done = await env.stackshift.waitForRun((await env.stackshift.queue('flaky').enqueue('stepRejects', {})).id)
  expect(done.status).toBe('failed')
  expect(done.attempts).toBe(1)
  expect(done.steps).toEqual([
    // Vitest types matchers as any; `as unknown` keeps the any out of the expected object.
    expect.objectContaining({
      id: 'charge-card',
      status: 'failed',
      error: expect.objectContaining({ message: 'card expired' }) as unknown,
    }),
  ])
})

it('RetryAfterError delays the next attempt by the time it asks for', async () => {
  let calls = 0
  env.stackshift.job('rateLimited', () => {
    calls++
    if (calls === 1) throw new RetryAfterError('429 from the API', '1h')
    return 'done'
  })
  await env.startWorker({ queues: ['flaky'], jobs: ['rateLimited'] })

  const { id } = await env.stackshift.queue('flaky').enqueue('rateLimited', {})
  const backingOff = await waitUntil(
    () => env.stackshift.getRun(id),
    (run) => run.attemptHistory.length === 1 && run.attemptHistory[0]!.outcome === 'failed',
  )
  // An hour exactly, instead of the 200 ms backoff: the millisecond either way is rounding.
  expect(backingOff.status).toBe('queued')
  expect(Math.abs(storedBackoffMs(backingOff) - 3_600_000)).toBeLessThanOrEqual(1)
  // The hour passes.
  await env.db.query(`UPDATE stackshift.runs SET available_at = now() WHERE id = $1`, [id])
  const done = await env.stackshift.waitForRun(id)
  expect(done.status).toBe('completed')
  expect(done.attempts).toBe(2)
  expect(calls).toBe(2)
})

it('each backoff lies between half and all of base × 2^(n-1), and never beyond the maximum', async () => {
  // Backoffs of a minute and more: time moves by back-dating, so they cost nothing.
  const databaseUrl = await createTestDatabase()
  const retryBaseMs = 60_000
  const retryMaxMs = 150_000
  const server = await startTestServer(databaseUrl, { retryBaseMs, retryMaxMs })
  const client = new StackShift({ address: server.address })
  const db = await connect(databaseUrl)
  let calls = 0
  client.job('neverWorks', () => {
    calls++
    throw new Error(`still broken (call ${calls})`)
  })
  const worker = client.worker({ queues: ['backoff'] })
  await worker.start()
  try {
    const maxAttempts = 6
    const { id } = await client.queue('backoff').enqueue('neverWorks', {}, { maxAttempts })
    const backoffs: number[] = []
    for (let failed = 1; failed < maxAttempts; failed++) {
      const backingOff = await waitUntil(
        () => client.getRun(id),
        (run) => run.attemptHistory.length === failed && run.attemptHistory.at(-1)!.outcome === 'failed',
      )
      expect(backingOff.status).toBe('queued')
      backoffs.push(storedBackoffMs(backingOff))
      // The backoff passes.
      await db.query(`UPDATE stackshift.runs SET available_at = now() WHERE id = $1`, [id])
    }
    const done = await client.waitForRun(id)
    expect([done.status, done.attempts, calls]).toEqual(['failed', maxAttempts, maxAttempts])
    // 60 s, 120 s, then 240 s, 480 s and 960 s capped at 150 s; each scaled by a random
    // factor from 0.5 to 1 (a millisecond either way is rounding).
    expect(backoffs).toHaveLength(maxAttempts - 1)
    for (const [n, backoff] of backoffs.entries()) {
      const exponentialMs = Math.min(retryMaxMs, retryBaseMs * 2 ** n)
      expect(backoff, `backoff after attempt ${n + 1}`).toBeGreaterThanOrEqual(exponentialMs / 2 - 1)
      expect(backoff, `backoff after attempt ${n + 1}`).toBeLessThanOrEqual(exponentialMs + 1)
    }
  } finally {
    await worker.stop()
    client.close()
    await db.end()
    await server.stop()
  }
})

it('an expired lease counts as a failed attempt, so a run whose worker always dies ends failed', async () => {
  const { run_id } = await env.raw.runs('Enqueue', { run: { queue: 'doomed', job: 'crashes', max_attempts: 2 } })
  for (const attempt of [1, 2]) {
    // Claim with a short lease and never heartbeat: the worker "died".
    const { tasks } = await env.raw.workers('ClaimTask', { queues: ['doomed'], jobs: ['crashes'], wait_ms: 20_000, lease_ms: 500 })
    expect(tasks).toEqual([expect.objectContaining({ run_id, attempt })])
  }
  const done = await env.stackshift.waitForRun(run_id)
  expect(done.status).toBe('failed')
  expect(done.attemptHistory.map((a) => [a.attempt, a.outcome])).toEqual([
    [1, 'lease_expired'],
    [2, 'lease_expired'],
  ])
  expect(done.error?.name).toBe('LeaseExpired')
})
