import { status } from '@grpc/grpc-js'
import { expect, it } from 'vitest'
import { connect } from './support/database.js'
import { useTestEnvironment } from './support/environment.js'
import { rejectionOf } from './support/raw-client.js'
import { waitUntil } from './support/wait-until.js'

// A minute-long backstop poll: anything that happens sooner was woken on purpose.
const env = useTestEnvironment({ pollIntervalMs: 60_000 })

/** Statements of this database that call claim_runs and are running now. */
async function claimsRunning(): Promise<number> {
  const { rows } = await env.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle' AND query LIKE '%claim_runs%'`,
  )
  return rows[0]!.n
}

it('an enqueue wakes a waiting ClaimTask long-poll without polling', async () => {
  const claim = env.raw.workers('ClaimTask', { queues: ['wake'], jobs: ['j'], wait_ms: 30_000 })
  // The long-poll first claims once, finds the queue empty and goes to sleep:
  // wait until it is subscribed and that claim has finished.
  await waitUntil(
    () => env.server.server.stats().workers,
    (workers) => workers === 1,
  )
  await waitUntil(claimsRunning, (running) => running === 0)
  const { run_id } = await env.raw.runs('Enqueue', { run: { queue: 'wake', job: 'j' } })
  const { tasks } = await claim
  expect(tasks.map((task) => task.run_id)).toEqual([run_id])
})

it('a ClaimTask long-poll that sees nothing returns no tasks when its wait ends', async () => {
  const { tasks } = await env.raw.workers('ClaimTask', { queues: ['empty'], jobs: ['j'], wait_ms: 300 })
  expect(tasks).toEqual([])
})

it('a ClaimTask whose caller goes away while its claim is running hands the run back, attempt uncounted', async () => {
  const { run_id } = await env.raw.runs('Enqueue', { run: { queue: 'abandoned', job: 'j' } })
  // Holding this lock makes the server's claim wait until the caller has gone.
  const blocker = await connect(env.databaseUrl)
  try {
    await blocker.query('BEGIN')
    await blocker.query('LOCK TABLE stackshift.runs IN EXCLUSIVE MODE')
    const claim = rejectionOf(env.raw.workers('ClaimTask', { queues: ['abandoned'], jobs: ['j'], wait_ms: 0 }, 300))
    await waitUntil(
      async () =>
        (
          await env.db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%claim_runs%'`,
          )
        ).rows[0]!.n,
      (waiting) => waiting > 0,
    )
    expect((await claim).code).toBe(status.DEADLINE_EXCEEDED)
    // The client cancelled the call at its deadline. A call answered later on the same
    // connection shows that the server has read that cancellation: only then may the
    // claim finish.
    const later = await rejectionOf(env.raw.workers('ClaimTask', { queues: [] }))
    expect(later.code).toBe(status.INVALID_ARGUMENT)
    await blocker.query('COMMIT')
  } finally {
    await blocker.end()
  }
  // Once the claim statement has finished, the run can only be leased to nobody or handed back.
  await waitUntil(claimsRunning, (running) => running === 0)
  const stored = await waitUntil(
    async () =>
      (await env.db.query<{ status: string; attempt: number }>(`SELECT status::text, attempt FROM stackshift.runs WHERE id = $1`, [run_id]))
        .rows[0]!,
    (run) => run.status !== 'running',
    10_000,
  )
  expect(stored).toEqual({ status: 'queued', attempt: 0 })
  const { tasks } = await env.raw.workers('ClaimTask', { queues: ['abandoned'], jobs: ['j'], wait_ms: 5000 })
  expect(tasks).toEqual([expect.objectContaining({ run_id, attempt: 1 })])
})

it('claims are sized to free slots: a worker with concurrency 3 and no prefetch holds 3 leases, not more', async () => {
  let started = 0
  let threeStarted!: () => void
  const areThreeRunning = new Promise<void>((resolve) => (threeStarted = resolve))
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  env.stackshift.job('holdsSlot', async () => {
    if (++started === 3) threeStarted()
    await released
  })
  const ids = (await env.stackshift.queue('slots').enqueueMany(Array.from({ length: 10 }, () => ({ job: 'holdsSlot', payload: {} })))).map(
    (r) => r.id,
  )
  await env.startWorker({ queues: ['slots'], jobs: ['holdsSlot'], concurrency: 3, prefetch: 0 })
  await areThreeRunning
  const { rows } = await env.db.query(
    `SELECT status::text, count(*)::int AS n FROM stackshift.runs WHERE id = ANY($1) GROUP BY 1 ORDER BY 1`,
    [ids],
  )
  expect(rows).toEqual([
    { status: 'queued', n: 7 },
    { status: 'running', n: 3 },
  ])
  release()
  for (const id of ids) expect((await env.stackshift.waitForRun(id)).status).toBe('completed')
  expect(started).toBe(10)
})

it('a worker prefetches runs beyond its concurrency, and starts them only as slots free up', async () => {
  let running = 0
  let mostRunning = 0
  let started = 0
  let twoStarted!: () => void
  const areTwoRunning = new Promise<void>((resolve) => (twoStarted = resolve))
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  env.stackshift.job('prefetched', async () => {
    mostRunning = Math.max(mostRunning, ++running)
    if (++started === 2) twoStarted()
    await released
    running--
  })
  const ids = (
    await env.stackshift.queue('prefetch').enqueueMany(Array.from({ length: 10 }, () => ({ job: 'prefetched', payload: {} })))
  ).map((r) => r.id)
  await env.startWorker({ queues: ['prefetch'], jobs: ['prefetched'], concurrency: 2, prefetch: 3 })
  await areTwoRunning
  // Two running plus three held ready: five leases, and only two handlers.
  await waitUntil(
    async () =>
      (await env.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stackshift.runs WHERE id = ANY($1) AND status = 'running'`, [ids]))
        .rows[0]!.n,
    (leased) => leased === 5,
  )
  expect(started).toBe(2)
  release()
  for (const id of ids) expect((await env.stackshift.waitForRun(id)).status).toBe('completed')
  expect(mostRunning).toBe(2)
})

/** Leased runs among `ids`, counted per lease token: runs claimed together share one. */
async function leasesPerClaim(ids: readonly string[]): Promise<number[]> {
  const { rows } = await env.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM stackshift.runs WHERE id = ANY($1) AND status = 'running' GROUP BY lease_token ORDER BY 1`,
    [ids],
  )
  return rows.map((row) => row.n)
}

async function completedAmong(ids: readonly string[]): Promise<number> {
  const { rows } = await env.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM stackshift.runs WHERE id = ANY($1) AND status = 'completed'`,
    [ids],
  )
  return rows[0]!.n
}

async function queuedAmong(ids: readonly string[]): Promise<number> {
  const { rows } = await env.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM stackshift.runs WHERE id = ANY($1) AND status = 'queued'`,
    [ids],
  )
  return rows[0]!.n
}

/** A job whose handlers all wait until `release` is called. */
function registerHeldJob(job: string): { release: () => void } {
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  env.stackshift.job(job, async () => {
    await released
  })
  return { release }
}

it('by default a worker of short handlers holds nine runs ready per slot beyond its concurrency', async () => {
  let started = 0
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  env.stackshift.job<{ isHeld: boolean }>('shortByDefault', async ({ payload }) => {
    if (!payload.isHeld) return
    started++
    await released
  })
  // Concurrency 10 (the default). Its handlers so far have been short (they return at once).
  await env.startWorker({ queues: ['default-prefetch'], jobs: ['shortByDefault'] })
  const short = await env.stackshift
    .queue('default-prefetch')
    .enqueueMany(Array.from({ length: 30 }, () => ({ job: 'shortByDefault', payload: { isHeld: false } })))
  await waitUntil(
    () => completedAmong(short.map((r) => r.id)),
    (n) => n === short.length,
  )
  const ids = (
    await env.stackshift
      .queue('default-prefetch')
      .enqueueMany(Array.from({ length: 150 }, () => ({ job: 'shortByDefault', payload: { isHeld: true } })))
  ).map((r) => r.id)
  // 10 running and 90 held ready: 100 leases; the other 50 stay queued. (Leases are
  // stored before the worker has the runs: wait for both.)
  await waitUntil(
    () => started,
    (running) => running === 10,
  )
  await waitUntil(
    async () => (await leasesPerClaim(ids)).reduce((sum, n) => sum + n, 0),
    (leased) => leased === 100,
  )
  expect(started).toBe(10)
  expect(await queuedAmong(ids)).toBe(50)
  release()
  await waitUntil(
    () => completedAmong(ids),
    (n) => n === ids.length,
  )
})

it('a worker whose handlers are slow holds no runs ready: it asks only for the slots that free', async () => {
  let started = 0
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  env.stackshift.job<{ slowMs: number }>('slowThenHeld', async ({ payload }) => {
    if (payload.slowMs > 0) return new Promise((resolve) => setTimeout(resolve, payload.slowMs))
    started++
    await released
  })
  // Concurrency 2 and prefetch 4: six runs in hand while handlers are short.
  await env.startWorker({ queues: ['slow-prefetch'], jobs: ['slowThenHeld'], concurrency: 2, prefetch: 4, leaseMs: 3000 })
  // Six handlers of 600 ms: the average handler time (a moving average that starts at 0
  // and takes a tenth of each new one) is over 50 ms after the first.
  const slow = await env.stackshift
    .queue('slow-prefetch')
    .enqueueMany(Array.from({ length: 6 }, () => ({ job: 'slowThenHeld', payload: { slowMs: 600 } })))
  await waitUntil(
    () => completedAmong(slow.map((r) => r.id)),
    (n) => n === slow.length,
  )
  const ids = (
    await env.stackshift
      .queue('slow-prefetch')
      .enqueueMany(Array.from({ length: 10 }, () => ({ job: 'slowThenHeld', payload: { slowMs: 0 } })))
  ).map((r) => r.id)
  await waitUntil(
    () => started,
    (n) => n === 2,
  )
  // Had the worker asked for more runs, it would have done so when it took these two,
  // before its next heartbeat on the same stream. Each heartbeat moves the deadlines of
  // the leases it holds; once two have, a claim for more would have been made.
  const deadlines = async () =>
    (
      await env.db.query<{ at: Date }>(`SELECT lease_expires_at AS at FROM stackshift.runs WHERE id = ANY($1) AND status = 'running'`, [
        ids,
      ])
    ).rows.map((row) => row.at.getTime())
  let seen = await deadlines()
  for (let heartbeat = 0; heartbeat < 2; heartbeat++) {
    const before = Math.max(...seen)
    seen = await waitUntil(deadlines, (now) => Math.min(...now) > before)
  }
  expect(await queuedAmong(ids)).toBe(8)
  expect(seen).toHaveLength(2)
  expect(started).toBe(2)
  release()
  await waitUntil(
    () => completedAmong(ids),
    (n) => n === ids.length,
  )
})

it('a worker stream is claimed at most 500 runs at a time: a worker holding 1,000 gets them in two claims', async () => {
  const { release } = registerHeldJob('heldInBatches')
  const ids = (
    await env.stackshift.queue('claim-size').enqueueMany(Array.from({ length: 1200 }, () => ({ job: 'heldInBatches', payload: {} })))
  ).map((r) => r.id)
  // Concurrency 100: the default prefetch (900) stops at 1,000 runs in hand.
  await env.startWorker({ queues: ['claim-size'], jobs: ['heldInBatches'], concurrency: 100 })
  await waitUntil(
    async () => (await leasesPerClaim(ids)).reduce((sum, n) => sum + n, 0),
    (leased) => leased === 1000,
  )
  expect(await leasesPerClaim(ids)).toEqual([500, 500])
  release()
  await waitUntil(
    () => completedAmong(ids),
    (n) => n === ids.length,
  )
})

it('higher priority runs are claimed first, then the oldest', async () => {
  const order: string[] = []
  env.stackshift.job('ordered', ({ payload }) => {
    order.push(payload as string)
  })
  const queue = env.stackshift.queue('priorities')
  const runs = [
    await queue.enqueue('ordered', 'normal-1'),
    await queue.enqueue('ordered', 'low', { priority: -5 }),
    await queue.enqueue('ordered', 'urgent', { priority: 10 }),
    await queue.enqueue('ordered', 'normal-2'),
  ]
  await env.startWorker({ queues: ['priorities'], jobs: ['ordered'], concurrency: 1 })
  for (const run of runs) await env.stackshift.waitForRun(run.id)
  expect(order).toEqual(['urgent', 'normal-1', 'normal-2', 'low'])
})

it('a delayed run stays queued until it is due and starts after its available time', async () => {
  env.stackshift.job('delayed', () => 'ran')
  await env.startWorker({ queues: ['later'], jobs: ['delayed'] })
  const farAway = await env.stackshift.queue('later').enqueue('delayed', {}, { runAt: new Date(Date.now() + 3_600_000) })
  const soon = await env.stackshift.queue('later').enqueue('delayed', {}, { delay: '300ms' })

  const done = await env.stackshift.waitForRun(soon.id)
  expect(done.status).toBe('completed')
  expect(done.attemptHistory[0]!.startedAt!.getTime()).toBeGreaterThanOrEqual(done.availableAt!.getTime())
  expect(done.availableAt!.getTime() - done.createdAt!.getTime()).toBeGreaterThanOrEqual(300)

  const waiting = await env.stackshift.getRun(farAway.id)
  expect(waiting.status).toBe('queued')
  expect(waiting.attempts).toBe(0)
  expect(waiting.availableAt!.getTime()).toBeGreaterThan(Date.now() + 3_000_000)
})

it('a worker takes runs only of the jobs it announced', async () => {
  env.stackshift.job('known', () => 'ok')
  const unknown = await env.stackshift.queue('mixed').enqueue('registeredElsewhere', {})
  const known = await env.stackshift.queue('mixed').enqueue('known', {})
  await env.startWorker({ queues: ['mixed'], jobs: ['known'] })
  expect((await env.stackshift.waitForRun(known.id)).status).toBe('completed')
  const untouched = await env.stackshift.getRun(unknown.id)
  expect(untouched.status).toBe('queued')
  expect(untouched.attempts).toBe(0)
})

it('an enqueue batch sends one notification for the whole batch', async () => {
  const listener = await connect(env.databaseUrl)
  const notices: string[] = []
  listener.on('notification', (message) => notices.push(message.payload ?? ''))
  await listener.query('LISTEN stackshift_ready')
  try {
    await env.stackshift
      .queue('notify-a')
      .enqueueMany([
        ...Array.from({ length: 50 }, () => ({ job: 'j', payload: {} })),
        ...Array.from({ length: 50 }, () => ({ job: 'j', payload: {}, delay: '1h' })),
      ])
    await env.stackshift.queue('notify-b').enqueueMany(Array.from({ length: 30 }, () => ({ job: 'j', payload: {}, delay: '1h' })))
    // A round trip on the listening connection delivers anything already sent.
    await listener.query('SELECT 1')
    expect(notices.map((notice) => JSON.parse(notice) as unknown)).toEqual([
      expect.objectContaining({ namespace: 'default', queues: ['notify-a'] }),
    ])
  } finally {
    await listener.end()
  }
})
