import { NonRetriableError, StackShift } from '@stackshift/sdk'
import { expect, it } from 'vitest'
import { useTestEnvironment } from './support/environment.js'

const env = useTestEnvironment()

async function runsWithKey(key: string): Promise<number> {
  const { rows } = await env.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stackshift.runs WHERE payload->>'key' = $1`, [key])
  return rows[0]!.n
}

it('1,000 concurrent enqueues with one idempotency key create exactly one run, and every caller gets its id', async () => {
  // Separate clients, so the calls arrive on separate connections as from separate processes.
  const clients = Array.from({ length: 10 }, () => new StackShift({ address: env.server.address }))
  try {
    const results = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        clients[i % clients.length]!.queue('signups').enqueue(
          'sendVerificationEmail',
          { key: 'concurrent' },
          { idempotencyKey: 'verify:user_concurrent' },
        ),
      ),
    )
    const ids = new Set(results.map((r) => r.id))
    expect(ids.size).toBe(1)
    expect(results.filter((r) => !r.deduplicated)).toHaveLength(1)
    expect(await runsWithKey('concurrent')).toBe(1)
  } finally {
    for (const client of clients) client.close()
  }
})

it('a batch that names one key twice stores one run', async () => {
  const results = await env.stackshift.queue('signups').enqueueMany([
    { job: 'sendVerificationEmail', payload: { key: 'batch' }, idempotencyKey: 'verify:batch' },
    { job: 'sendVerificationEmail', payload: { key: 'batch' }, idempotencyKey: 'verify:batch' },
    { job: 'sendVerificationEmail', payload: { key: 'batch' } },
  ])
  expect(results[1]).toEqual({ id: results[0]!.id, deduplicated: true })
  expect(results[0]!.deduplicated).toBe(false)
  expect(results[2]!.deduplicated).toBe(false)
  expect(await runsWithKey('batch')).toBe(2)
})

it('a key whose TTL ran out no longer deduplicates', async () => {
  const first = await env.stackshift
    .queue('signups')
    .enqueue('sendVerificationEmail', { key: 'ttl' }, { idempotencyKey: 'verify:ttl', idempotencyTtl: '1h' })
  const { rows } = await env.db.query<{ ttl: number }>(
    `SELECT extract(epoch FROM idempotency_expires_at - created_at)::int AS ttl FROM stackshift.runs WHERE id = $1`,
    [first.id],
  )
  expect(rows[0]!.ttl).toBe(3600)
  // Move time instead of waiting for it: the key expired a second ago.
  await env.db.query(`UPDATE stackshift.runs SET idempotency_expires_at = now() - interval '1 second' WHERE id = $1`, [first.id])

  const second = await env.stackshift.queue('signups').enqueue('sendVerificationEmail', { key: 'ttl' }, { idempotencyKey: 'verify:ttl' })
  expect(second.deduplicated).toBe(false)
  expect(second.id).not.toBe(first.id)
  expect((await env.stackshift.getRun(first.id)).idempotencyKey).toBeUndefined()
  expect((await env.stackshift.getRun(second.id)).idempotencyKey).toBe('verify:ttl')
})

it('the default TTL is 24 hours', async () => {
  const run = await env.stackshift
    .queue('signups')
    .enqueue('sendVerificationEmail', { key: 'default-ttl' }, { idempotencyKey: 'verify:default-ttl' })
  const { rows } = await env.db.query<{ ttl: number }>(
    `SELECT extract(epoch FROM idempotency_expires_at - created_at)::int AS ttl FROM stackshift.runs WHERE id = $1`,
    [run.id],
  )
  expect(rows[0]!.ttl).toBe(24 * 3600)
})

it('a run that fails releases its key, so the next enqueue creates a new run', async () => {
  env.stackshift.job('alwaysRejects', () => {
    throw new NonRetriableError('card declined')
  })
  await env.startWorker({ queues: ['payments'] })
  const first = await env.stackshift.queue('payments').enqueue('alwaysRejects', { key: 'released' }, { idempotencyKey: 'charge:42' })
  const failed = await env.stackshift.waitForRun(first.id)
  expect(failed.status).toBe('failed')
  expect(failed.idempotencyKey).toBeUndefined()

  const retry = await env.stackshift.queue('payments').enqueue('alwaysRejects', { key: 'released' }, { idempotencyKey: 'charge:42' })
  expect(retry.deduplicated).toBe(false)
  expect(retry.id).not.toBe(first.id)
  await env.stackshift.waitForRun(retry.id)
})

it('namespaces do not share idempotency keys', async () => {
  const other = new StackShift({ address: env.server.address, namespace: 'staging' })
  try {
    const a = await env.stackshift.queue('signups').enqueue('sendVerificationEmail', { key: 'ns' }, { idempotencyKey: 'verify:ns' })
    const b = await other.queue('signups').enqueue('sendVerificationEmail', { key: 'ns' }, { idempotencyKey: 'verify:ns' })
    expect(a.deduplicated).toBe(false)
    expect(b.deduplicated).toBe(false)
    expect(a.id).not.toBe(b.id)
  } finally {
    other.close()
  }
})
