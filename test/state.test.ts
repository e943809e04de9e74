import { status } from '@grpc/grpc-js'
import { FailedPreconditionError, LockUnavailableError, ResourceExhaustedError, StackShift, type StackShiftError } from '@stackshift/sdk'
import { describe, expect, it } from 'vitest'
import { rejectionOf } from './support/raw-client.js'
import { useTestEnvironment } from './support/environment.js'
import { ChildScript } from './support/processes.js'
import { waitUntil } from './support/wait-until.js'

const env = useTestEnvironment({ stateSweepIntervalMs: 200 })

async function storedRow(key: string): Promise<{ value: unknown; version: string } | undefined> {
  const { rows } = await env.db.query<{ value: unknown; version: string }>(
    `SELECT value, version::text AS version FROM stackshift.state WHERE key = $1`,
    [key],
  )
  return rows[0]
}

describe('entries', () => {
  it('set, get, delete, compareAndSet and list, with versions', async () => {
    const { state } = env.stackshift
    expect(await state.get('config:x')).toBeUndefined()
    expect(await state.set('config:x', { mode: 'a' })).toEqual({ version: 1 })
    expect(await state.getEntry('config:x')).toMatchObject({ key: 'config:x', value: { mode: 'a' }, version: 1, expiresAt: undefined })
    expect(await state.compareAndSet('config:x', { expectedVersion: 3, value: { mode: 'stale' } })).toEqual({ swapped: false, version: 1 })
    expect(await state.compareAndSet('config:x', { expectedVersion: 1, value: { mode: 'b' } })).toEqual({ swapped: true, version: 2 })
    expect(await state.compareAndSet('config:new', { expectedVersion: 0, value: 0 })).toEqual({ swapped: true, version: 1 })
    expect(await state.get('config:x')).toEqual({ mode: 'b' })
    // 0, "", false and null are values like any other.
    for (const value of [0, '', false, null]) {
      await state.set('config:falsy', value)
      expect(await state.get('config:falsy')).toBe(value)
    }
    expect(await state.delete('config:x')).toBe(true)
    expect(await state.delete('config:x')).toBe(false)
    expect(await state.get('config:x')).toBeUndefined()

    for (let i = 0; i < 5; i++) await state.set(`list:${i}`, i)
    await state.set('listless', 'not in the prefix')
    const first = await state.list({ prefix: 'list:', limit: 2 })
    const second = await state.list({ prefix: 'list:', limit: 2, cursor: first.nextCursor })
    const third = await state.list({ prefix: 'list:', limit: 2, cursor: second.nextCursor })
    expect([first, second, third].map((page) => page.entries.map((entry) => entry.value))).toEqual([[0, 1], [2, 3], [4]])
    expect(third.nextCursor).toBeUndefined()
  })

  it('setIfAbsent under 1,000 concurrent callers: exactly one gets true', async () => {
    const results = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => env.stackshift.state.setIfAbsent('seen:webhook_991', { by: i }, { ttl: '24h' })),
    )
    expect(results.filter(Boolean)).toHaveLength(1)
    const winner = results.indexOf(true)
    expect(await env.stackshift.state.get('seen:webhook_991')).toEqual({ by: winner })
  })

  it('TTL: a marker is visible before it expires, invisible right after, and gone from the table after a sweep', async () => {
    const { state } = env.stackshift
    await state.set('marker:ttl', true, { ttl: '1h' })
    expect(await state.get('marker:ttl')).toBe(true)
    expect((await state.getEntry('marker:ttl'))!.expiresAt).toBeInstanceOf(Date)
    // Its hour passes: the expiry moves to just before now, on the database clock.
    await env.db.query(`UPDATE stackshift.state SET expires_at = now() - interval '1 millisecond' WHERE key = 'marker:ttl'`)
    expect(await state.get('marker:ttl')).toBeUndefined()
    expect(await state.setIfAbsent('marker:ttl', 'again')).toBe(true)
    await state.set('marker:gone', 1, { ttl: 100 })
    await waitUntil(
      () => storedRow('marker:gone'),
      (row) => row === undefined,
    )
  })
})

describe('counters', () => {
  it('10 clients and 10 runs x 100 increments, the runs on a worker killed midway: every increment counted once, none lost', async () => {
    const key = 'counter:jepsen'
    // The killed worker prints COUNTING after 50 increments of a run: midway.
    const perClient = 100
    const child = new ChildScript('test/fixtures/counter-worker.ts', { STACKSHIFT_ADDRESS: env.server.address })
    const clients = Array.from({ length: 10 }, () => new StackShift({ address: env.server.address }))
    try {
      await child.waitForLine(/^READY$/)
      const runs = await env.stackshift
        .queue('counters')
        .enqueueMany(Array.from({ length: 10 }, () => ({ job: 'countUp', payload: { key, times: perClient } })))
      // Every client increment must be acknowledged: the server is up throughout, and a
      // refused or lost increment is a failure, not a reason to widen the bound.
      const fromClients = Promise.all(
        clients.map(async (client) => {
          let acknowledged = 0
          for (let i = 0; i < perClient; i++) {
            await client.state.increment(key, 1)
            acknowledged++
          }
          return acknowledged
        }),
      )
      await child.waitForLine(/^COUNTING /)
      await child.kill('SIGKILL')
      // Its leases would run out in a minute; the minute passes now.
      await env.db.query(`UPDATE stackshift.runs SET lease_expires_at = now() WHERE id = ANY($1) AND status = 'running'`, [
        runs.map((run) => run.id),
      ])

      env.stackshift.job<{ key: string; times: number }>('countUp', async ({ payload, state }) => {
        for (let i = 0; i < payload.times; i++) await state.increment(payload.key, 1)
      })
      await env.startWorker({ queues: ['counters'], concurrency: 10 })
      const acknowledged = (await fromClients).reduce((sum, n) => sum + n, 0)
      const done = await Promise.all(runs.map((run) => env.stackshift.waitForRun(run.id, { timeoutMs: 60_000 })))
      expect(done.map((run) => run.status)).toEqual(runs.map(() => 'completed'))

      expect(acknowledged).toBe(clients.length * perClient)
      // Exactly: an increment inside a run that was applied by the killed worker and
      // replayed by the next attempt would make it larger, a lost one smaller.
      expect(await env.stackshift.state.get<number>(key)).toBe(acknowledged + runs.length * perClient)
      for (const run of done) {
        const increments = run.steps.filter((step) => step.kind === 'state')
        expect(new Set(increments.map((step) => step.id)).size).toBe(perClient)
      }
      // Every run was interrupted once, by the kill: its first attempt's increments were kept, not repeated.
      expect(done.map((run) => run.attemptHistory.map((attempt) => attempt.outcome))).toEqual(
        runs.map(() => ['lease_expired', 'completed']),
      )
    } finally {
      await child.kill('SIGKILL')
      for (const client of clients) client.close()
    }
  }, 120_000)

  it('inside a run, through the protocol: an operation id applies once, and a lost lease refuses the write', async () => {
    await env.raw.runs('Enqueue', { run: { queue: 'raw-state', job: 'rawState', payload_json: '{}' } })
    const { tasks } = await env.raw.workers('ClaimTask', { queues: ['raw-state'], jobs: ['rawState'], max_tasks: 1 })
    const run = { run_id: tasks[0]!.run_id, lease_token: tasks[0]!.lease_token }
    const first = await env.raw.state('Increment', { key: 'raw:count', delta: 5, run: { ...run, op_id: 'state.increment:raw:count' } })
    const repeat = await env.raw.state('Increment', { key: 'raw:count', delta: 5, run: { ...run, op_id: 'state.increment:raw:count' } })
    expect([first.value, repeat.value]).toEqual([5, 5])
    await env.db.query(`UPDATE stackshift.runs SET lease_expires_at = now() - interval '1 second' WHERE id = $1`, [run.run_id])
    const refused = await rejectionOf(
      env.raw.state('Increment', { key: 'raw:count', delta: 5, run: { ...run, op_id: 'state.increment:raw:count:1' } }),
    )
    expect(refused.code).toBe(status.FAILED_PRECONDITION)
    expect(await env.stackshift.state.get('raw:count')).toBe(5)
  })

  it('inside a run, an operation id already taken by another operation or by a step is INVALID_ARGUMENT, and changes nothing', async () => {
    await env.raw.runs('Enqueue', { run: { queue: 'raw-op-ids', job: 'rawOpIds', payload_json: '{}' } })
    const { tasks } = await env.raw.workers('ClaimTask', { queues: ['raw-op-ids'], jobs: ['rawOpIds'], max_tasks: 1 })
    const run = { run_id: tasks[0]!.run_id, lease_token: tasks[0]!.lease_token }
    await env.raw.state('Get', { key: 'op-ids:value', run: { ...run, op_id: 'shared' } })
    await env.raw.workers('CompleteStep', { ...run, step_id: 'a-step', result_json: '{"version":1}' })
    const reusedByAnother = await rejectionOf(
      env.raw.state('Set', { key: 'op-ids:value', value_json: '1', run: { ...run, op_id: 'shared' } }),
    )
    expect(reusedByAnother).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'run.op_id: was used in this run by another State Store operation; each operation of a run needs an id of its own',
    })
    const reusedFromAStep = await rejectionOf(
      env.raw.state('Set', { key: 'op-ids:value', value_json: '1', run: { ...run, op_id: 'a-step' } }),
    )
    expect(reusedFromAStep).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'run.op_id: is the id of a run step of this run; a State Store operation needs an id of its own',
    })
    expect(await storedRow('op-ids:value')).toBeUndefined()
  })
})

describe('inside a run, each operation applies once', () => {
  it.each(['throws', 'loses its lease'] as const)(
    'get, set, delete, setIfAbsent and compareAndSet in a run whose first attempt %s after them: the retry gets what each returned, and changes nothing again',
    async (ending) => {
      const { state } = env.stackshift
      const key = (name: string) => `once:${ending}:${name}`
      const job = ending === 'throws' ? 'onceThenThrow' : 'onceThenLoseLease'
      await state.set(key('get'), 'before')
      await state.set(key('delete'), 'doomed')
      const seen: unknown[] = []
      let firstAttemptDone!: () => void
      const isFirstAttemptDone = new Promise<void>((resolve) => (firstAttemptDone = resolve))
      let releaseFirst!: () => void
      const firstReleased = new Promise<void>((resolve) => (releaseFirst = resolve))
      env.stackshift.job(job, async ({ state: runState, run }) => {
        seen.push({
          get: await runState.get(key('get')),
          set: await runState.set(key('set'), 'from the run'),
          delete: await runState.delete(key('delete')),
          setIfAbsent: await runState.setIfAbsent(key('absent'), 'from the run'),
          compareAndSet: await runState.compareAndSet(key('cas'), { expectedVersion: 0, value: 'from the run' }),
        })
        if (run.attempt > 1) return 'done'
        // Between the attempts the world moves on: an operation run again would now
        // return something else, or undo these changes.
        await state.set(key('get'), 'after')
        await state.set(key('set'), 'outside')
        await state.set(key('delete'), 'recreated')
        await state.delete(key('absent'))
        await state.delete(key('cas'))
        firstAttemptDone()
        if (ending === 'throws') throw new Error('the first attempt fails after its writes')
        // Hangs until released: only the lease running out ends this attempt.
        await firstReleased
        return 'too late'
      })
      await env.startWorker({ queues: [job], jobs: [job], concurrency: 2 })
      const { id } = await env.stackshift.queue(job).enqueue(job, {}, { maxAttempts: 2 })
      await isFirstAttemptDone
      if (ending === 'loses its lease') {
        // The worker is gone as far as the server can tell: its lease has run out.
        await env.db.query(`UPDATE stackshift.runs SET lease_expires_at = now() - interval '1 second' WHERE id = $1`, [id])
      }
      const done = await env.stackshift.waitForRun(id)
      releaseFirst()

      expect(done.attemptHistory.map((attempt) => attempt.outcome)).toEqual([ending === 'throws' ? 'failed' : 'lease_expired', 'completed'])
      expect(done.result).toBe('done')
      const once = { get: 'before', set: { version: 1 }, delete: true, setIfAbsent: true, compareAndSet: { swapped: true, version: 1 } }
      expect(seen).toEqual([once, once])
      // As the world left them: nothing the run did was done again.
      expect(
        await Promise.all(['get', 'set', 'delete', 'absent', 'cas'].map(async (name) => (await state.getEntry(key(name)))?.value)),
      ).toEqual(['after', 'outside', 'recreated', undefined, undefined])
      expect(done.steps.map((step) => [step.kind, step.attempt])).toEqual(Array.from({ length: 5 }, () => ['state', 1]))
    },
  )
})

describe('locks', () => {
  it('10 workers contend for one lock and update a shared value under it: no update is lost', async () => {
    const { state } = env.stackshift
    await state.set('shared:total', 0)
    env.stackshift.job('underLock', async ({ state: runState }) => {
      for (let i = 0; i < 10; i++) {
        await runState.withLock('lock:shared', { ttl: '10s', waitMs: 30_000 }, async (lock) => {
          const current = (await runState.get<number>('shared:total'))!
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 3))
          await runState.set('shared:total', current + 1, { fencingToken: lock.fencingToken })
        })
      }
    })
    await env.startWorker({ queues: ['locks'], jobs: ['underLock'], concurrency: 10 })
    const runs = await env.stackshift.queue('locks').enqueueMany(Array.from({ length: 10 }, () => ({ job: 'underLock', payload: {} })))
    const done = await Promise.all(runs.map((run) => env.stackshift.waitForRun(run.id)))
    expect(done.map((run) => run.status)).toEqual(runs.map(() => 'completed'))
    expect(await state.get('shared:total')).toBe(100)
  })

  it('a holder that outlives its TTL is fenced: its writes and its release are refused once the lock moved on', async () => {
    const { state } = env.stackshift
    const first = await state.lock('lock:customer_42', { ttl: '1h' })
    await expect(state.lock('lock:customer_42', { ttl: '30s' })).rejects.toBeInstanceOf(LockUnavailableError)
    // The holder pauses past its TTL: the lock's expiry moves to just before now.
    await env.db.query(`UPDATE stackshift.locks SET expires_at = now() - interval '1 millisecond' WHERE key = 'lock:customer_42'`)
    // Expired: its token no longer fences anything, even before anyone else takes the lock.
    await expect(state.set('customer_42:plan', 'old', { fencingToken: first.fencingToken })).rejects.toBeInstanceOf(FailedPreconditionError)
    const second = await state.lock('lock:customer_42', { ttl: '30s', waitMs: 1000 })
    expect(second.fencingToken).toBeGreaterThan(first.fencingToken)
    await state.set('customer_42:plan', 'new', { fencingToken: second.fencingToken })
    const stale = await state.set('customer_42:plan', 'stale', { fencingToken: first.fencingToken }).catch((error: unknown) => error)
    expect(stale).toBeInstanceOf(FailedPreconditionError)
    expect((stale as Error).message).toBe(`fencing token ${first.fencingToken} is stale: the lock that issued it is no longer held with it`)
    await expect(first.release()).rejects.toBeInstanceOf(FailedPreconditionError)
    await expect(first.extend()).rejects.toBeInstanceOf(FailedPreconditionError)
    expect(await state.get('customer_42:plan')).toBe('new')
    await second.extend('1m')
    expect(second.expiresAt.getTime()).toBeGreaterThan(Date.now() + 50_000)
    await second.release()
    const third = await state.lock('lock:customer_42', { ttl: '1s' })
    await third.release()
  })

  it('a lock wait whose caller went away ends: the lock is not taken for nobody once it is free', async () => {
    const { state } = env.stackshift
    const holder = await state.lock('lock:abandoned', { ttl: '30s' })
    // It would wait a minute; its caller gives up after 300 ms.
    const abandoned = await rejectionOf(env.raw.state('AcquireLock', { key: 'lock:abandoned', ttl_ms: 30_000, wait_ms: 60_000 }, 300))
    expect(abandoned.code).toBe(status.DEADLINE_EXCEEDED)
    // A call answered later on the same connection shows that the server has read the
    // cancellation: from here on, the wait knows its caller is gone.
    await env.raw.state('Get', { key: 'lock:abandoned:unrelated' })
    await holder.release()
    // A wait still running polls every 100 ms: for a second, ten polls' worth, nobody
    // takes the free lock. (A stall of the server longer than that could hide such a
    // wait; it could not fail this test.)
    const heldRows = async () =>
      (await env.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stackshift.locks WHERE key = 'lock:abandoned'`)).rows[0]!.n
    const watchUntil = Date.now() + 1000
    while (Date.now() < watchUntil) {
      expect(await heldRows()).toBe(0)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const next = await state.lock('lock:abandoned', { ttl: '1s' })
    await next.release()
  })
})

describe('bad input: clear errors, nothing changed', () => {
  it('keys, TTLs, increments and sizes', async () => {
    const { state } = env.stackshift
    await state.set('bad:text', 'hello')
    const errorOf = (promise: Promise<unknown>) =>
      promise.then(
        () => undefined,
        (error: unknown) => [(error as StackShiftError).constructor.name, (error as StackShiftError).message],
      )
    expect(await errorOf(state.set('', 1))).toEqual(['InvalidArgumentError', 'state key must be a non-empty string'])
    expect(await errorOf(state.set('k'.repeat(10 * 1024), 1))).toEqual(['InvalidArgumentError', 'key: must be at most 400 characters'])
    expect(await errorOf(state.set('bad:ttl', 1, { ttl: -5 }))).toEqual([
      'InvalidArgumentError',
      'state.set("bad:ttl") ttl must be a non-negative number of milliseconds, got -5',
    ])
    expect(await errorOf(state.set('bad:ttl', 1, { ttl: 'soon' }))).toEqual([
      'InvalidArgumentError',
      'state.set("bad:ttl") ttl must be a duration like "500ms", "30s", "10m", "1h" or "7d", got "soon"',
    ])
    expect(await errorOf(state.increment('bad:text', 1))).toEqual([
      'FailedPreconditionError',
      'state key "bad:text" holds a string, not a number; it cannot be incremented',
    ])
    expect(await errorOf(state.increment('bad:count', 'ten' as unknown as number))).toEqual([
      'InvalidArgumentError',
      'state.increment("bad:count") delta must be a finite number, got "ten"',
    ])
    const oversized = await state.set('bad:big', 'x'.repeat(1024 * 1024 + 1)).catch((error: unknown) => error)
    expect(oversized).toBeInstanceOf(ResourceExhaustedError)
    expect((oversized as Error).message).toMatch(/^value_json: is \d+ bytes of JSON; the limit is 1048576 bytes$/)

    // Through the protocol, the server names the fields.
    for (const [request, message] of [
      [{ key: '', value_json: '1' }, 'key: must not be empty'],
      [{ key: 'bad:ttl', value_json: '1', ttl_ms: -5 }, 'ttl_ms: must not be negative'],
      [{ key: 'bad:json', value_json: '{oops' }, /^value_json: is not valid JSON/],
    ] as const) {
      const error = await rejectionOf(env.raw.state('Set', request))
      expect(error.code).toBe(status.INVALID_ARGUMENT)
      expect(error.details).toMatch(message)
    }
    expect((await rejectionOf(env.raw.state('AcquireLock', { key: 'lock:x', ttl_ms: 0 }))).details).toBe('ttl_ms: must be at least 100')

    expect(await storedRow('bad:text')).toEqual({ value: 'hello', version: '1' })
    const { rows } = await env.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stackshift.state WHERE key LIKE 'bad:%' OR key = ''`)
    expect(rows[0]!.n).toBe(1)
  })
})
