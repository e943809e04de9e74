import * as grpc from '@grpc/grpc-js'
import { describe, expect, it } from 'vitest'
import { useTestEnvironment } from './support/environment.js'
import { type RawStream, rejectionOf } from './support/raw-client.js'

/*
 * Requests the server's decoders cannot read: 64-bit integers beyond 2^53 - 1
 * (which a client in Go, Java or Python can send) and bytes that are not the
 * message at all. They must be refused as the client's error, naming the
 * field, and must not store anything or end other clients' work.
 */

const env = useTestEnvironment()

// Integers as decimal strings: the .proto-built client encodes them whole.
const twoToThe60 = '1152921504606846976'
const twoToThe54 = '18014398509481984'
const tooLarge = 'must be at most 9007199254740991 (2^53 - 1)'

async function storedRuns(): Promise<number> {
  const { rows } = await env.db.query<{ n: number }>('SELECT count(*)::int AS n FROM stackshift.runs')
  return rows[0]!.n
}

/** Resolves with a raw stream's answers and final status once the server ends it. */
function collect<Response>(stream: RawStream<Response>) {
  const answers: Response[] = []
  stream.on('data', (answer: Response) => answers.push(answer))
  stream.on('error', () => {})
  return new Promise<{ answers: typeof answers; code: grpc.status; details: string }>((resolve) =>
    stream.on('status', (final: grpc.StatusObject) => resolve({ answers, code: final.code, details: final.details })),
  )
}

describe('unary calls', () => {
  it('a 64-bit integer beyond 2^53 - 1 is INVALID_ARGUMENT naming the field, and nothing is stored', async () => {
    const before = await storedRuns()
    expect(await rejectionOf(env.raw.runs('Enqueue', { run: { queue: 'q', job: 'j', delay_ms: twoToThe60 } }))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: `run.delay_ms: ${tooLarge}`,
    })
    const batch = [
      { queue: 'q', job: 'j' },
      { queue: 'q', job: 'j', idempotency_ttl_ms: twoToThe54 },
    ]
    expect(await rejectionOf(env.raw.runs('EnqueueBatch', { runs: batch }))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: `runs[1].idempotency_ttl_ms: ${tooLarge}`,
    })
    expect(await storedRuns()).toBe(before)
  })

  it('a negative one below -(2^53 - 1) is refused the same way', async () => {
    const lease = { run_id: '0190c5a5-0000-7000-8000-000000000000', lease_token: '0190c5a5-0000-7000-8000-000000000000' }
    const request = { ...lease, error: { name: 'E', message: 'boom' }, retry_delay_ms: '-18014398509481984' }
    expect(await rejectionOf(env.raw.workers('FailRun', request))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      details: 'retry_delay_ms: must be at least -9007199254740991 (-(2^53 - 1))',
    })
  })

  it.each([
    ['a field of a wire type that does not exist', [0x0f], 'cant skip wire type 7'],
    ['a string field cut short', [0x0a, 0x7f, 0x61], 'premature EOF'],
  ])('bytes that are not the request message (%s) are INVALID_ARGUMENT naming the message type', async (_, bytes, reason) => {
    // A client that sends its own bytes, not a message its library encoded.
    const client = new grpc.Client(env.server.address, grpc.credentials.createInsecure())
    try {
      const identity = (buffer: Buffer) => buffer
      const call = new Promise((resolve, reject) =>
        client.makeUnaryRequest('/stackshift.jobs.v1.RunService/Enqueue', identity, identity, Buffer.from(bytes), (error, response) =>
          error ? reject(error) : resolve(response),
        ),
      )
      expect(await rejectionOf(call)).toEqual({
        code: grpc.status.INVALID_ARGUMENT,
        details: `request: is not a valid stackshift.jobs.v1.EnqueueRequest message (${reason})`,
      })
    } finally {
      client.close()
    }
  })
})

describe('streams', () => {
  it('on EnqueueStream, the requests before the undecodable one are answered and stored, then the stream ends with INVALID_ARGUMENT', async () => {
    const before = await storedRuns()
    const stream = env.raw.enqueueStream()
    const ended = collect(stream)
    stream.write({ id: 1, enqueue: { run: { queue: 'streamed', job: 'j' } } })
    stream.write({ id: twoToThe54, enqueue: { run: { queue: 'streamed', job: 'j' } } })
    stream.write({ id: 3, enqueue: { run: { queue: 'streamed', job: 'j' } } })
    const { answers, code, details } = await ended
    expect({ code, details }).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: `id: ${tooLarge}` })
    expect(answers).toHaveLength(1)
    expect(answers[0]).toMatchObject({ id: 1, code: grpc.status.OK })
    const { rows } = await env.db.query<{ id: string }>('SELECT id::text FROM stackshift.runs WHERE queue = $1', ['streamed'])
    expect(rows.map((row) => row.id)).toEqual([answers[0]!.enqueue!.run_id])
    expect(await storedRuns()).toBe(before + 1)
  })

  it('on the worker stream, an operation with an undecodable id ends the stream with INVALID_ARGUMENT naming it', async () => {
    const stream = env.raw.connect()
    const ended = collect(stream)
    stream.write({ hello: { queues: ['decode-q'], jobs: ['j'], slots: 1 } })
    const operation = { id: twoToThe60, heartbeat: { leases: [{ run_id: 'r', lease_token: 't' }] } }
    stream.write({ operations: [operation] })
    const { answers, code, details } = await ended
    expect({ code, details }).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: `operations[0].id: ${tooLarge}` })
    // The welcome came first; no operation was answered.
    expect(answers.flatMap((answer) => answer.results)).toEqual([])
  })
})

it('after all of that the server still serves every client', async () => {
  const { run_id } = await env.raw.runs('Enqueue', { run: { queue: 'after', job: 'j' } })
  expect((await env.raw.runs('GetRun', { run_id })).run!.status).toBe('RUN_STATUS_QUEUED')
})
