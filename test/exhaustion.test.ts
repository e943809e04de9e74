import { readFileSync } from 'node:fs'
import * as grpc from '@grpc/grpc-js'
import { StackShift } from '@stackshift/sdk'
import type pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { connect, createTestDatabase } from './support/database.js'
import { ChildScript } from './support/processes.js'
import { type RawStream, createRawClient } from './support/raw-client.js'
import type { ConnectResponse } from './support/raw-messages.js'
import { waitUntil } from './support/wait-until.js'

/*
 * A worker that lies about its slots and stops reading its stream cannot
 * exhaust the server, nor keep an honest worker from its runs. The server
 * runs in a process of its own, so its peak memory (VmHWM) is its own, with
 * a heap of 256 MiB: garbage is then collected soon, so the peak shows what
 * the server holds rather than how lazily V8 collects. Without the stream's
 * backpressure and the claims' byte budget, the silent worker takes runs as
 * fast as they are enqueued and the server runs out of that heap (and
 * without the cap reaches a peak of about 940 MiB); with them it peaked at
 * about 360 MiB, startup (160 MiB, TypeScript compiled in the process) and
 * the 13 MB enqueue batches included.
 */

const runs = 5000
const payloadBytes = 64 * 1024
const hostileLeaseMs = 2000
/** Generous, and far below the 313 MiB of payloads that go through. */
const peakRssBoundBytes = 450 * 1024 * 1024

let server: ChildScript
let address: string
let db: pg.Client

beforeAll(async () => {
  const databaseUrl = await createTestDatabase()
  db = await connect(databaseUrl)
  server = new ChildScript(
    'server/src/main.ts',
    {
      DATABASE_URL: databaseUrl,
      STACKSHIFT_HOST: '127.0.0.1',
      STACKSHIFT_PORT: '0',
      STACKSHIFT_LOG_LEVEL: 'info',
      STACKSHIFT_REAPER_INTERVAL_MS: '200',
      STACKSHIFT_RETRY_BASE_MS: '50',
      STACKSHIFT_RETRY_MAX_MS: '200',
      STACKSHIFT_POLL_INTERVAL_MS: '500',
      STACKSHIFT_SHUTDOWN_GRACE_MS: '500',
    },
    ['--max-old-space-size=256'],
  )
  const line = await server.waitForLine(/StackShift server listening/)
  address = `127.0.0.1:${(JSON.parse(line) as { port: number }).port}`
})

afterAll(async () => {
  await (db as pg.Client | undefined)?.end()
  await server.kill('SIGKILL')
})

/** The server's peak resident memory so far, in bytes (VmHWM). */
function serverPeakRss(): number {
  const status = readFileSync(`/proc/${server.process.pid}/status`, 'utf8')
  return Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)![1]) * 1024
}

/** Resolves with how a stream ended; reads (and drops) what it receives. */
function ending(stream: RawStream<ConnectResponse>): Promise<{ code: grpc.status; details: string }> {
  stream.on('data', () => {})
  stream.on('error', () => {})
  return new Promise((resolve) => stream.on('status', (final: grpc.StatusObject) => resolve({ code: final.code, details: final.details })))
}

async function count(sql: string, values: unknown[] = []): Promise<number> {
  return (await db.query<{ n: number }>(sql, values)).rows[0]!.n
}

it('a worker that announces 2^32 - 1 slots and stops reading gets no more runs, and an honest worker drains them all', async () => {
  // Its own connection: a stream that is not read fills its connection's flow-control window.
  const hostile = createRawClient(address, { 'grpc.primary_user_agent': 'hostile-worker' })
  const hello = { queues: ['flood'], jobs: ['work'], lease_ms: hostileLeaseMs }
  try {
    const tooManyAtHello = hostile.connect()
    const helloEnded = ending(tooManyAtHello)
    tooManyAtHello.write({ hello: { ...hello, worker_id: 'hostile-hello', slots: 2 ** 32 - 1 } })
    expect(await helloEnded).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'hello.slots: must be at most 10000' })

    const tooManyAdded = hostile.connect()
    const addedEnded = ending(tooManyAdded)
    tooManyAdded.write({ hello: { ...hello, worker_id: 'hostile-added', slots: 10_000 }, added_slots: 2 ** 32 - 1 })
    expect(await addedEnded).toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
      details: expect.stringMatching(/^added_slots: /) as string,
    })

    // The most it may announce, and it never reads a message: the server
    // pushes until its writes stop draining. (A grpc-js stream that was never
    // asked for a message keeps reading its connection into memory; read(0)
    // on the paused stream asks once, and grpc-js then stops reading the
    // connection as soon as its buffer is full, as any client that stops
    // reading does.)
    const silent = hostile.connect()
    silent.on('error', () => {})
    silent.pause()
    silent.read(0)
    silent.write({ hello: { ...hello, worker_id: 'hostile', slots: 10_000 } })

    const client = new StackShift({ address })
    try {
      const payload = { blob: 'x'.repeat(payloadBytes - 12) }
      for (let start = 0; start < runs; start += 200) {
        await client.queue('flood').enqueueMany(Array.from({ length: 200 }, () => ({ job: 'work', payload })))
      }
      // Let the server push the silent worker what it will before the honest one comes:
      // until the runs it was given stop growing for half a second. (This only waits;
      // what it got in all is counted at the end.)
      const givenToSilent = () => count(`SELECT count(*)::int AS n FROM stackshift.runs WHERE worker_id = 'hostile'`)
      let lastCount = -1
      for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
        await new Promise((resolve) => setTimeout(resolve, 500))
        const now = await givenToSilent()
        if (now > 0 && now === lastCount) break
        lastCount = now
      }

      client.job('work', ({ payload: received }) => (received as { blob: string }).blob.length)
      const worker = client.worker({ queues: ['flood'], concurrency: 50 })
      await worker.start()
      try {
        await waitUntil(
          () => count(`SELECT count(*)::int AS n FROM stackshift.runs WHERE status = 'completed'`),
          (completed) => completed === runs,
          90_000,
        )
      } finally {
        await worker.stop()
      }
      // Every lease the silent worker was ever given ended by expiring (one attempt each),
      // and its runs were completed by the honest worker. It was given runs only while its
      // stream still drained into the connection's buffers (some again, once their leases
      // had expired): far short of its 10,000 slots, and of the runs.
      const { rows } = await db.query<{ leases: number; runs: number }>(
        `SELECT count(*)::int AS leases, count(DISTINCT run_id)::int AS runs FROM stackshift.attempts WHERE worker_id = 'hostile'`,
      )
      const given = rows[0]!
      expect(
        await count(`SELECT count(*)::int AS n FROM stackshift.attempts WHERE worker_id = 'hostile' AND outcome <> 'lease_expired'`),
      ).toBe(0)
      expect(given.runs).toBeGreaterThan(0)
      expect(given.leases).toBeLessThan(runs / 2)
      expect(await count(`SELECT count(*)::int AS n FROM stackshift.runs WHERE worker_id = 'hostile'`)).toBe(0)

      const peak = serverPeakRss()
      console.log(
        `exhaustion: the silent worker was given ${given.runs} of ${runs} runs (${given.leases} leases); server peak RSS ${(peak / 1024 / 1024).toFixed(0)} MiB ` +
          `(${((runs * payloadBytes) / 1024 / 1024).toFixed(0)} MiB of payloads went through)`,
      )
      expect(peak).toBeLessThan(peakRssBoundBytes)
    } finally {
      client.close()
    }
  } finally {
    hostile.close()
  }
  // 313 MiB of payloads in and out, on a machine shared with the other test files.
}, 240_000)
