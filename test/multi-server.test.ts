import { StackShift, type Worker } from '@stackshift/sdk'
import type pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { connect, createTestDatabase } from './support/database.js'
import { ChildScript } from './support/processes.js'
import { createRawClient } from './support/raw-client.js'
import { waitUntil } from './support/wait-until.js'

/*
 * Two server processes on one database. The backstop poll is set to a minute,
 * so anything that happens sooner across servers happened through
 * LISTEN/NOTIFY.
 */

let servers: ChildScript[] = []
let addresses: string[] = []
let db: pg.Client

async function startServerProcess(databaseUrl: string): Promise<{ process: ChildScript; address: string }> {
  const process = new ChildScript('server/src/main.ts', {
    DATABASE_URL: databaseUrl,
    STACKSHIFT_HOST: '127.0.0.1',
    STACKSHIFT_PORT: '0',
    STACKSHIFT_POLL_INTERVAL_MS: '60000',
    STACKSHIFT_LOG_LEVEL: 'info',
  })
  const line = await process.waitForLine(/StackShift server listening/)
  return { process, address: `127.0.0.1:${(JSON.parse(line) as { port: number }).port}` }
}

beforeAll(async () => {
  const url = await createTestDatabase()
  db = await connect(url)
  const started = await Promise.all([startServerProcess(url), startServerProcess(url)])
  servers = started.map((s) => s.process)
  addresses = started.map((s) => s.address)
})

afterAll(async () => {
  // Unset when beforeAll failed before connecting.
  await (db as pg.Client | undefined)?.end()
  await Promise.all(servers.map((server) => server.kill('SIGTERM')))
})

it('2,000 runs enqueued across two servers, with workers on each, are each completed exactly once', async () => {
  const clients = addresses.map((address) => new StackShift({ address }))
  const executions = new Map<string, number>()
  const workers: Worker[] = []
  for (const [index, client] of clients.entries()) {
    client.job('tally', ({ run }) => {
      executions.set(run.id, (executions.get(run.id) ?? 0) + 1)
      return index
    })
    workers.push(client.worker({ queues: ['shared'], concurrency: 25 }))
  }
  await Promise.all(workers.map((worker) => worker.start()))
  try {
    const [a, b] = clients as [StackShift, StackShift]
    // Half as concurrent single enqueues on server A, half as batches on server B.
    const singles = await Promise.all(Array.from({ length: 1000 }, (_, i) => a.queue('shared').enqueue('tally', { i })))
    const batches: string[] = []
    for (let start = 0; start < 1000; start += 250) {
      const items = Array.from({ length: 250 }, (_, i) => ({ job: 'tally', payload: { i: 1000 + start + i } }))
      batches.push(...(await b.queue('shared').enqueueMany(items)).map((r) => r.id))
    }
    const ids = [...singles.map((r) => r.id), ...batches]
    expect(new Set(ids).size).toBe(2000)

    await waitUntil(
      async () => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stackshift.runs WHERE status = 'completed'`)).rows[0]!.n,
      (n) => n === 2000,
    )
    expect(executions.size).toBe(2000)
    expect([...executions.values()].every((count) => count === 1)).toBe(true)
    const { rows } = await db.query(
      `SELECT count(*)::int AS n, max(attempt) AS max_attempt, count(DISTINCT result::text)::int AS servers FROM stackshift.runs`,
    )
    expect(rows[0]).toEqual({ n: 2000, max_attempt: 1, servers: 2 })
  } finally {
    await Promise.all(workers.map((worker) => worker.stop()))
    for (const client of clients) client.close()
  }
})

it('a run enqueued on one server wakes a worker connected only to the other, and a waiter on the first sees it finish', async () => {
  const [onA, onB] = addresses.map((address) => new StackShift({ address })) as [StackShift, StackShift]
  onB.job('onlyOnB', ({ payload }) => ({ echoed: payload }))
  const worker = onB.worker({ queues: ['only-b'] })
  await worker.start()
  try {
    // Ready at once: only a NOTIFY from server A can wake the worker on B before the minute-long poll.
    const now = await onA.queue('only-b').enqueue('onlyOnB', 'now')
    // Delayed: server A's timer makes it ready, and NOTIFY carries that to B.
    const later = await onA.queue('only-b').enqueue('onlyOnB', 'later', { delay: '1s' })
    // Both waits are on server A while the work happens on B: the finish trigger's NOTIFY ends them.
    const [doneNow, doneLater] = await Promise.all([
      onA.waitForRun(now.id, { timeoutMs: 20_000 }),
      onA.waitForRun(later.id, { timeoutMs: 20_000 }),
    ])
    expect(doneNow.result).toEqual({ echoed: 'now' })
    expect(doneLater.result).toEqual({ echoed: 'later' })
    expect(doneLater.attemptHistory[0]!.startedAt!.getTime()).toBeGreaterThanOrEqual(doneLater.availableAt!.getTime())
  } finally {
    await worker.stop()
    onA.close()
    onB.close()
  }
})

it('a run handed back on one server is taken at once by a worker connected only to the other', async () => {
  const [addressA, addressB] = addresses as [string, string]
  const raw = createRawClient(addressA)
  const onA = new StackShift({ address: addressA })
  const onB = new StackShift({ address: addressB })
  onB.job('handedBack', () => 'done on B')
  try {
    const { run_id } = await raw.runs('Enqueue', { run: { queue: 'handed-back', job: 'handedBack' } })
    const { tasks } = await raw.workers('ClaimTask', { queues: ['handed-back'], jobs: ['handedBack'], wait_ms: 5000 })
    expect(tasks.map((task) => task.run_id)).toEqual([run_id])
    const worker = onB.worker({ queues: ['handed-back'] })
    await worker.start()
    try {
      // B's worker finds nothing until the release on A, and only A's NOTIFY can tell it before the poll.
      await raw.workers('ReleaseRun', { run_id, lease_token: tasks[0]!.lease_token })
      const done = await onA.waitForRun(run_id, { timeoutMs: 20_000 })
      expect(done.result).toBe('done on B')
      expect(done.attemptHistory.map((attempt) => attempt.outcome)).toEqual(['completed'])
    } finally {
      await worker.stop()
    }
  } finally {
    raw.close()
    onA.close()
    onB.close()
  }
})
