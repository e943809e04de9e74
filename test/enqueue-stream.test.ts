import { once } from 'node:events'
import { status } from '@grpc/grpc-js'
import { InvalidArgumentError, ResourceExhaustedError } from '@stackshift/sdk'
import { expect, it } from 'vitest'
import { connect, createTestDatabase } from './support/database.js'
import { useTestEnvironment } from './support/environment.js'
import { ChildScript } from './support/processes.js'
import { type RawStream, createRawClient } from './support/raw-client.js'
import type { EnqueueStreamResponse } from './support/raw-messages.js'
import { startTestServer } from './support/server.js'

// The smallest message limit the server accepts: a large payload is over it, a small one far under.
const env = useTestEnvironment({ maxMessageBytes: 64 * 1024 })

/** Collects a raw EnqueueStream's answers until the server ends it; resolves with them and the final status. */
function collect(stream: RawStream<EnqueueStreamResponse>) {
  const answers: EnqueueStreamResponse[] = []
  stream.on('data', (answer: EnqueueStreamResponse) => answers.push(answer))
  const ended = new Promise<{ answers: EnqueueStreamResponse[]; code: number }>((resolve) => {
    stream.on('status', (final: { code: number }) => resolve({ answers, code: final.code }))
    stream.on('error', () => {})
  })
  return { answers, ended }
}

async function storedRunIds(queue: string): Promise<string[]> {
  const { rows } = await env.db.query<{ id: string }>('SELECT id::text FROM stackshift.runs WHERE queue = $1 ORDER BY id', [queue])
  return rows.map((row) => row.id)
}

it('a client built from the .proto files enqueues over EnqueueStream: each request answered under its id, errors per request, the stream ends OK after the half-close', async () => {
  const stream = env.raw.enqueueStream()
  const { ended } = collect(stream)
  const run = (job: string, extra: Record<string, unknown> = {}) => ({ namespace: 'polyglot', run: { queue: 'streamed', job, ...extra } })
  stream.write({ id: 1, enqueue: run('sendInvoice', { payload_json: '{"invoice":1}' }) })
  stream.write({ id: 2, enqueue: run('') })
  stream.write({ id: 3 })
  stream.write({ id: 4, enqueue: run('sendInvoice', { payload_json: '{"invoice":2}', idempotency_key: 'invoice:2' }) })
  stream.write({ id: 5, enqueue: run('sendInvoice', { payload_json: '{"invoice":2}', idempotency_key: 'invoice:2' }) })
  stream.write({ id: 6, enqueue: run('sendInvoice', { payload_json: '{not json' }) })
  stream.end()

  const { answers, code } = await ended
  expect(code).toBe(status.OK)
  const byId = new Map(answers.map((answer) => [answer.id, answer]))
  expect([...byId.keys()].sort()).toEqual([1, 2, 3, 4, 5, 6])
  expect(byId.get(1)).toMatchObject({ code: status.OK, enqueue: { deduplicated: false } })
  expect(byId.get(2)).toMatchObject({ code: status.INVALID_ARGUMENT, enqueue: null })
  expect(byId.get(2)!.message).toMatch(/^run\.job: /)
  // Vitest types matchers as any; `as unknown` keeps the any out of the expected object.
  expect(byId.get(3)).toMatchObject({ code: status.INVALID_ARGUMENT, message: expect.stringMatching(/^enqueue: /) as unknown })
  expect(byId.get(6)).toMatchObject({ code: status.INVALID_ARGUMENT, message: expect.stringMatching(/^run\.payload_json: /) as unknown })
  // The same key twice on one stream is one run.
  const [first, second] = [byId.get(4)!, byId.get(5)!]
  expect(first.code).toBe(status.OK)
  expect(second.code).toBe(status.OK)
  expect(second.enqueue!.run_id).toBe(first.enqueue!.run_id)
  expect([first.enqueue!.deduplicated, second.enqueue!.deduplicated].sort()).toEqual([false, true])

  const { rows } = await env.db.query(`SELECT id::text, payload FROM stackshift.runs WHERE namespace = 'polyglot' ORDER BY id`)
  expect(rows).toEqual(
    [
      { id: byId.get(1)!.enqueue!.run_id, payload: { invoice: 1 } },
      { id: first.enqueue!.run_id, payload: { invoice: 2 } },
    ].sort((a, b) => a.id.localeCompare(b.id)),
  )
})

it('concurrent SDK enqueues share the stream: each gets its own run, and one invalid or oversized enqueue fails alone', async () => {
  const queue = env.stackshift.queue('shared-stream')
  const outcomes = await Promise.allSettled([
    ...Array.from({ length: 200 }, (_, i) => queue.enqueue('resizeImage', { image: i })),
    queue.enqueue('resizeImage', { image: 'bad' }, { priority: 5000 }),
    // Over the server's 64 KiB message limit: refused by the transport, not by a field check.
    queue.enqueue('resizeImage', { image: 'x'.repeat(70 * 1024) }),
  ])
  const fulfilled = outcomes
    .slice(0, 200)
    .map((outcome) => (outcome.status === 'fulfilled' ? outcome.value.id : (outcome.reason as unknown)))
  const badPriority = outcomes[200]!
  const oversized = outcomes[201]!
  expect(badPriority.status).toBe('rejected')
  expect((badPriority as PromiseRejectedResult).reason).toBeInstanceOf(InvalidArgumentError)
  expect(((badPriority as PromiseRejectedResult).reason as Error).message).toMatch(/^run\.priority: /)
  expect(oversized.status).toBe('rejected')
  expect((oversized as PromiseRejectedResult).reason).toBeInstanceOf(ResourceExhaustedError)

  expect(new Set(fulfilled).size).toBe(200)
  expect(await storedRunIds('shared-stream')).toEqual([...fulfilled].sort())
  const { rows } = await env.db.query<{ payload: { image: number } }>(`SELECT payload FROM stackshift.runs WHERE queue = 'shared-stream'`)
  expect(rows.map((row) => row.payload.image).sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i))
})

it('a script that enqueues and does not close its client still exits', async () => {
  const script = new ChildScript('test/fixtures/enqueue-and-exit.ts', { STACKSHIFT_ADDRESS: env.server.address })
  const exited = once(script.process, 'exit') as Promise<[code: number | null, signal: NodeJS.Signals | null]>
  try {
    const line = await script.waitForLine(/^ENQUEUED /)
    const runId = line.slice('ENQUEUED '.length)
    const [code] = await Promise.race([
      exited,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the script did not exit')), 20_000)),
    ])
    expect(code).toBe(0)
    expect(await storedRunIds('scripts')).toEqual([runId])
  } finally {
    await script.kill()
  }
})

it('a server shutting down answers every request it received before it ends the stream, and stores only those answered OK', async () => {
  const databaseUrl = await createTestDatabase()
  const server = await startTestServer(databaseUrl)
  const raw = createRawClient(server.address)
  try {
    const stream = raw.enqueueStream()
    const { answers, ended } = collect(stream)
    let sent = 0
    const sender = setInterval(() => {
      for (let i = 0; i < 20; i++)
        stream.write({ id: ++sent, enqueue: { run: { queue: 'closing', job: 'archive', payload_json: String(sent) } } })
    }, 1)
    while (answers.length < 50) await new Promise((resolve) => setTimeout(resolve, 5))
    const stopping = server.stop()
    const { code } = await ended
    clearInterval(sender)
    await stopping
    expect(code).toBe(status.OK)

    const ok = answers.filter((answer) => answer.code === status.OK)
    expect(ok.length).toBeGreaterThanOrEqual(50)
    for (const answer of answers.filter((a) => a.code !== status.OK))
      expect(answer).toMatchObject({ code: status.UNAVAILABLE, message: expect.stringMatching(/shutting down/) as unknown })
    expect(new Set(answers.map((answer) => answer.id)).size).toBe(answers.length)
    const db = await connect(databaseUrl)
    try {
      const { rows } = await db.query<{ id: string }>(`SELECT id::text FROM stackshift.runs WHERE queue = 'closing' ORDER BY id`)
      expect(rows.map((row) => row.id)).toEqual(ok.map((answer) => answer.enqueue!.run_id).sort())
    } finally {
      await db.end()
    }
  } finally {
    raw.close()
  }
})
