import { status } from '@grpc/grpc-js'
import { LeaseLostError } from '@stackshift/sdk'
import { expect, it } from 'vitest'
import { rejectionOf } from './support/raw-client.js'
import { useTestEnvironment } from './support/environment.js'
import { waitUntil } from './support/wait-until.js'

const env = useTestEnvironment()

/** Moves the lease deadline into the past, as if the worker had paused for too long. */
async function expireLease(runId: string): Promise<void> {
  await env.db.query(`UPDATE stackshift.runs SET lease_expires_at = now() - interval '1 second' WHERE id = $1`, [runId])
}

async function storedSteps(runId: string): Promise<string[]> {
  const { rows } = await env.db.query<{ step_id: string }>('SELECT step_id FROM stackshift.steps WHERE run_id = $1 ORDER BY step_id', [
    runId,
  ])
  return rows.map((row) => row.step_id)
}

it('a worker whose lease expired cannot complete a step or the run: its writes are rejected and nothing is stored', async () => {
  const { run_id } = await env.raw.runs('Enqueue', { run: { queue: 'fenced', job: 'j', max_attempts: 3 } })
  const { tasks } = await env.raw.workers('ClaimTask', { queues: ['fenced'], jobs: ['j'], wait_ms: 5000 })
  const stale = { run_id, lease_token: tasks[0]!.lease_token }
  await env.raw.workers('CompleteStep', { ...stale, step_id: 'before-pause', result_json: '1' })

  await expireLease(run_id)

  for (const [method, request] of [
    ['CompleteStep', { ...stale, step_id: 'after-pause', result_json: '2' }],
    ['CompleteRun', { ...stale, result_json: '"done"' }],
    ['FailRun', { ...stale, error: { name: 'Error', message: 'late failure' } }],
    ['ReleaseRun', stale],
  ] as const) {
    const rejection = await rejectionOf(env.raw.workers(method, request))
    expect([method, rejection.code]).toEqual([method, status.FAILED_PRECONDITION])
    expect(rejection.details).toContain(`lease on run ${run_id} is not held`)
  }
  expect(await env.raw.workers('Heartbeat', { leases: [stale] })).toEqual({ revoked: [{ run_id, reason: 'REVOKE_REASON_LEASE_LOST' }] })

  // The next attempt gets a new lease; the old token stays fenced even though the run is running again.
  const next = await env.raw.workers('ClaimTask', { queues: ['fenced'], jobs: ['j'], wait_ms: 10_000 })
  expect(next.tasks).toEqual([
    expect.objectContaining({ run_id, attempt: 2, steps: [expect.objectContaining({ step_id: 'before-pause', result_json: '1' })] }),
  ])
  expect((await rejectionOf(env.raw.workers('CompleteRun', { ...stale, result_json: '"stale"' }))).code).toBe(status.FAILED_PRECONDITION)
  await env.raw.workers('CompleteRun', { run_id, lease_token: next.tasks[0]!.lease_token, result_json: '"fresh"' })

  const run = await env.stackshift.getRun(run_id)
  expect(run.status).toBe('completed')
  expect(run.result).toBe('fresh')
  expect(await storedSteps(run_id)).toEqual(['before-pause'])
  expect(run.attemptHistory.map((a) => a.outcome)).toEqual(['lease_expired', 'completed'])
})

it('a step or completion sent again under the same lease (its answer was lost) is accepted and stored once', async () => {
  const { run_id } = await env.raw.runs('Enqueue', { run: { queue: 'repeats', job: 'j' } })
  const { tasks } = await env.raw.workers('ClaimTask', { queues: ['repeats'], jobs: ['j'], wait_ms: 5000 })
  const lease = { run_id, lease_token: tasks[0]!.lease_token }
  await env.raw.workers('CompleteStep', { ...lease, step_id: 'charge', result_json: '{"chargeId":"ch_1"}' })
  await env.raw.workers('CompleteStep', { ...lease, step_id: 'charge', result_json: '{"chargeId":"ch_1"}' })
  await env.raw.workers('CompleteRun', { ...lease, result_json: '"done"' })
  await env.raw.workers('CompleteRun', { ...lease, result_json: '"done"' })
  const run = await env.stackshift.getRun(run_id)
  expect(run.status).toBe('completed')
  expect(run.steps.map((step) => [step.id, step.result])).toEqual([['charge', { chargeId: 'ch_1' }]])
})

it('runs claimed together each keep their lease by heartbeat while they run longer than the lease', async () => {
  let started = 0
  let allStarted!: () => void
  const areAllRunning = new Promise<void>((resolve) => (allStarted = resolve))
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  env.stackshift.job('outlivesLease', async ({ run }) => {
    if (++started === 4) allStarted()
    await released
    return run.attempt
  })
  const runs = await env.stackshift.queue('long').enqueueMany(Array.from({ length: 4 }, () => ({ job: 'outlivesLease', payload: {} })))
  const ids = runs.map((run) => run.id)
  // Heartbeats every 1.5 s: a stall of the worker shorter than 3 s costs it no lease.
  const leaseMs = 4500
  await env.startWorker({ queues: ['long'], jobs: ['outlivesLease'], concurrency: 4, leaseMs })
  await areAllRunning
  const leases = async () =>
    (
      await env.db.query<{ token: string; expires_at: Date; is_past: boolean }>(
        `SELECT lease_token::text AS token, lease_expires_at AS expires_at, lease_expires_at < now() AS is_past
         FROM stackshift.runs WHERE id = ANY($1) AND status = 'running'`,
        [ids],
      )
    ).rows
  // Claimed together: one claim leased all four, under one token.
  const claimed = await leases()
  expect(claimed).toHaveLength(4)
  expect(new Set(claimed.map((lease) => lease.token)).size).toBe(1)
  const claimedUntil = Math.max(...claimed.map((lease) => lease.expires_at.getTime()))
  // The handlers run on until the database clock has passed the deadline the claim
  // gave: only heartbeats can have kept every lease.
  await waitUntil(
    async () => (await env.db.query<{ now: Date }>(`SELECT now()`)).rows[0]!.now.getTime(),
    (now) => now > claimedUntil,
    leaseMs + 10_000,
  )
  const held = await leases()
  expect(held.map((lease) => [lease.token, lease.is_past])).toEqual(claimed.map((lease) => [lease.token, false]))
  for (const lease of held) expect(lease.expires_at.getTime()).toBeGreaterThan(claimedUntil)
  release()
  for (const run of runs) {
    const done = await env.stackshift.waitForRun(run.id)
    expect(done.status).toBe('completed')
    expect(done.result).toBe(1)
    expect(done.attemptHistory.map((a) => a.outcome)).toEqual(['completed'])
  }
})

it('a heartbeat extends the lease, on the database clock', async () => {
  const { run_id } = await env.raw.runs('Enqueue', { run: { queue: 'beats', job: 'j' } })
  const { tasks } = await env.raw.workers('ClaimTask', { queues: ['beats'], jobs: ['j'], wait_ms: 5000, lease_ms: 1000 })
  const lease = { run_id, lease_token: tasks[0]!.lease_token }
  const remaining = async () =>
    (
      await env.db.query<{ ms: number }>(
        `SELECT (extract(epoch FROM lease_expires_at - now()) * 1000)::float8 AS ms FROM stackshift.runs WHERE id = $1`,
        [run_id],
      )
    ).rows[0]!.ms
  expect(await remaining()).toBeLessThanOrEqual(1000)
  expect(await env.raw.workers('Heartbeat', { leases: [lease], lease_ms: 60_000 })).toEqual({ revoked: [] })
  expect(await remaining()).toBeGreaterThan(50_000)
  await env.raw.workers('CompleteRun', lease)
})

it('an SDK worker that loses its lease sees its signal abort, and the step it completes afterwards is not stored', async () => {
  let paused!: () => void
  const isPaused = new Promise<void>((resolve) => (paused = resolve))
  let resume!: () => void
  const resumed = new Promise<void>((resolve) => (resume = resolve))
  let observed: { aborted: boolean; reason: unknown } | undefined
  let lateStepError: unknown
  let endAttemptOne!: () => void
  const attemptOneEnded = new Promise<void>((resolve) => (endAttemptOne = resolve))

  env.stackshift.job('pausesForTooLong', async ({ step, signal, run }) => {
    await step.run('before', () => 'kept')
    if (run.attempt === 1) {
      paused()
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()))
      await resumed
      observed = { aborted: signal.aborted, reason: signal.reason }
      try {
        await step.run('after', () => 'must not be stored')
      } catch (error) {
        lateStepError = error
        throw error
      } finally {
        endAttemptOne()
      }
    }
    return `finished by attempt ${run.attempt}`
  })
  await env.startWorker({ queues: ['pauses'], jobs: ['pausesForTooLong'], leaseMs: 1500 })
  const runId = (await env.stackshift.queue('pauses').enqueue('pausesForTooLong', {})).id
  await isPaused
  await expireLease(runId)
  // The handler waits for its signal: the next heartbeat learns the lease is gone and aborts it.
  resume()
  const done = await env.stackshift.waitForRun(runId, { timeoutMs: 30_000 })
  await attemptOneEnded

  expect(observed?.aborted).toBe(true)
  expect(observed?.reason).toBeInstanceOf(LeaseLostError)
  expect(lateStepError).toBeInstanceOf(LeaseLostError)
  expect(done.status).toBe('completed')
  expect(done.result).toBe('finished by attempt 2')
  expect(await storedSteps(runId)).toEqual(['before'])
  expect(done.attemptHistory.map((a) => a.outcome)).toEqual(['lease_expired', 'completed'])
})
