import { Writable } from 'node:stream'
import { type Logger, StackShift } from '@stackshift/sdk'
import { createLogger, loadConfig, startServer, type StackShiftServer } from '@stackshift/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase } from './support/database.js'
import { type RawClient, createRawClient } from './support/raw-client.js'
import { waitUntil } from './support/wait-until.js'

const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
const traceparent = `00-${traceId}-00f067aa0ba902b7-01`

// Server lines, parsed, as the server writes them.
const serverLines: Array<Record<string, unknown>> = []
const capture = new Writable({
  write(chunk: Buffer, _encoding, done) {
    for (const line of chunk.toString().split('\n')) if (line) serverLines.push(JSON.parse(line) as Record<string, unknown>)
    done()
  },
})

let server: StackShiftServer
let address: string
let raw: RawClient

beforeAll(async () => {
  const config = { ...loadConfig({}), host: '127.0.0.1', port: 0, metrics: false, retryBaseMs: 10, retryMaxMs: 10, reaperIntervalMs: 100 }
  server = await startServer({ ...config, databaseUrl: await createTestDatabase() }, createLogger('info', capture))
  address = `127.0.0.1:${server.port}`
  raw = createRawClient(address)
})

afterAll(async () => {
  raw.close()
  await server.stop()
})

const enqueueTraced = async (queue: string, job: string, maxAttempts: number): Promise<string> =>
  (await raw.runs('Enqueue', { run: { queue, job, max_attempts: maxAttempts, trace_context: { traceparent } } })).run_id

const linesAbout = (runId: string) => serverLines.filter((line) => line.runId === runId)

describe('JSON logs', () => {
  it('every server line about a run carries run id, job, attempt and the trace id; handler lines carry them too', async () => {
    const handlerLines: Array<{ message: string; fields: Record<string, unknown> | undefined }> = []
    const keep = (message: string, fields?: Record<string, unknown>) => handlerLines.push({ message, fields })
    const logger: Logger = { debug: keep, info: keep, warn: keep, error: keep }
    const stackshift = new StackShift({ address, logger })
    stackshift.job('flaky', ({ logger: runLogger }) => {
      runLogger.info('trying')
      throw new Error('always fails')
    })
    const worker = stackshift.worker({ queues: ['logged'], concurrency: 2 })
    await worker.start()
    try {
      const failing = await enqueueTraced('logged', 'flaky', 2)
      const done = await stackshift.waitForRun(failing, { timeoutMs: 30_000 })
      expect(done.status).toBe('failed')

      // A lease that runs out: claimed without heartbeats, then reaped.
      const abandoned = await enqueueTraced('abandoned', 'forgotten', 3)
      await raw.workers('ClaimTask', { queues: ['abandoned'], jobs: ['forgotten'], max_tasks: 1, wait_ms: 5000, lease_ms: 500 })
      const cancelled = await enqueueTraced('cancelled', 'unwanted', 3)
      await stackshift.cancelRun(cancelled, { reason: 'not needed' })
      await waitUntil(
        () => linesAbout(abandoned).length,
        (count) => count > 0,
      )

      const summary = (line: Record<string, unknown>) => [line.msg, line.level, line.job, line.attempt, line.traceId, line.outcome]
      expect(linesAbout(failing).map(summary)).toEqual([
        ['attempt ended without completing; the run will be retried', 'info', 'flaky', 1, traceId, 'failed'],
        ['run failed', 'warn', 'flaky', 2, traceId, 'failed'],
      ])
      expect(linesAbout(failing)[1]!.error).toBe('always fails')
      expect(linesAbout(abandoned).map(summary)).toEqual([
        ['attempt ended without completing; the run will be retried', 'info', 'forgotten', 1, traceId, 'lease_expired'],
      ])
      expect(linesAbout(cancelled).map((line) => [line.msg, line.job, line.attempt, line.traceId, line.reason])).toEqual([
        ['run cancelled', 'unwanted', 0, traceId, 'not needed'],
      ])
      for (const line of serverLines) expect(typeof line.time).toBe('string')

      expect(handlerLines.filter((line) => line.message === 'trying').map((line) => line.fields)).toEqual([
        { runId: failing, job: 'flaky', attempt: 1, traceId },
        { runId: failing, job: 'flaky', attempt: 2, traceId },
      ])
    } finally {
      await worker.stop()
      stackshift.close()
    }
  })
})
