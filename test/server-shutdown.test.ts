import { status } from '@grpc/grpc-js'
import { expect, it } from 'vitest'
import { connect, createTestDatabase } from './support/database.js'
import { watchHealth } from './support/health.js'
import { createRawClient } from './support/raw-client.js'
import { startTestServer } from './support/server.js'
import { waitUntil } from './support/wait-until.js'

/*
 * A server that stops (on SIGTERM) first reports NOT_SERVING, so load
 * balancers send it nothing new, then lets calls in flight finish for up to
 * STACKSHIFT_SHUTDOWN_GRACE_MS, then cuts the connections that remain.
 */

it('a stopping server reports NOT_SERVING to health watchers while it still stops', async () => {
  const server = await startTestServer(await createTestDatabase(), { shutdownGraceMs: 30_000 })
  const watches = ['', 'stackshift.jobs.v1.RunService', 'stackshift.jobs.v1.WorkerService'].map((service) =>
    watchHealth(server.address, service),
  )
  try {
    for (const watch of watches) {
      await waitUntil(
        () => watch.statuses,
        (statuses) => statuses.length > 0,
      )
    }
    expect(watches.map((watch) => watch.statuses)).toEqual(watches.map(() => ['SERVING']))
    let isStopped = false
    const stopping = server.stop().then(() => (isStopped = true))
    for (const watch of watches) {
      await waitUntil(
        () => watch.statuses,
        (statuses) => statuses.length > 1,
      )
    }
    expect(watches.map((watch) => watch.statuses)).toEqual(watches.map(() => ['SERVING', 'NOT_SERVING']))
    // The watches are calls in flight: the server waits for them (for up to 30 s) before it is stopped.
    expect(isStopped).toBe(false)
    for (const watch of watches) watch.cancel()
    await stopping
  } finally {
    for (const watch of watches) watch.cancel()
    await server.stop()
  }
})

it('calls in flight may finish within the shutdown grace period; those still open at its end are cut', async () => {
  const databaseUrl = await createTestDatabase()
  const graceMs = 2500
  const server = await startTestServer(databaseUrl, { shutdownGraceMs: graceMs })
  const raw = createRawClient(server.address)
  const db = await connect(databaseUrl)
  const watch = watchHealth(server.address)
  try {
    // A WaitForRun in flight (it has marked its run), and a health watch, which never ends by itself.
    const { run_id } = await raw.runs('Enqueue', { run: { queue: 'nobody', job: 'j' } })
    const waiting = raw.runs('WaitForRun', { run_id, timeout_ms: 20_000 })
    await waitUntil(
      async () =>
        (await db.query<{ has_waiter: boolean }>(`SELECT has_waiter FROM stackshift.runs WHERE id = $1`, [run_id])).rows[0]!.has_waiter,
      Boolean,
    )
    await waitUntil(
      () => watch.statuses,
      (statuses) => statuses.length > 0,
    )

    const stopAt = Date.now()
    const stopping = server.stop()
    // The run finishes during the grace period: the wait in flight gets its answer.
    await db.query(`UPDATE stackshift.runs SET status = 'completed', result = '"done"', finished_at = now() WHERE id = $1`, [run_id])
    expect(await waiting).toMatchObject({ finished: true, run: { id: run_id, status: 'RUN_STATUS_COMPLETED' } })
    // The watch is cut when the grace period ends: not before, and not after the default 10 s.
    const { code, endedAt } = await watch.ended
    expect(code).not.toBe(status.OK)
    expect(endedAt - stopAt).toBeGreaterThanOrEqual(graceMs - 50)
    await stopping
    expect(Date.now() - stopAt).toBeLessThan(9000)
  } finally {
    watch.cancel()
    raw.close()
    await db.end()
    await server.stop()
  }
})
