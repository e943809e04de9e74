import { randomUUID } from 'node:crypto'
import * as grpc from '@grpc/grpc-js'
import { protocolLimits } from '@stackshift/proto/limits'
import { expect, it } from 'vitest'
import { useTestEnvironment } from './support/environment.js'
import { type RawStream, createRawClient } from './support/raw-client.js'
import type { ConnectResponse, OperationResult } from './support/raw-messages.js'
import { startTestServer } from './support/server.js'
import { waitUntil } from './support/wait-until.js'

/*
 * What one worker stream, and one connection, may make the server hold:
 * free slots, operations unanswered, concurrent streams. (A stream that stops
 * reading is in exhaustion.test.ts.)
 */

const env = useTestEnvironment()

/** Resolves with a raw stream's answers and final status once the server ends it. */
function collect(stream: RawStream<ConnectResponse>) {
  const answers: ConnectResponse[] = []
  stream.on('data', (answer: ConnectResponse) => answers.push(answer))
  stream.on('error', () => {})
  return {
    answers,
    ended: new Promise<{ code: grpc.status; details: string }>((resolve) =>
      stream.on('status', (final: grpc.StatusObject) => resolve({ code: final.code, details: final.details })),
    ),
  }
}

it('a hello announcing more than 10,000 free slots ends the stream with INVALID_ARGUMENT naming hello.slots', async () => {
  const stream = env.raw.connect()
  const { ended } = collect(stream)
  stream.write({ hello: { queues: ['caps'], jobs: ['j'], slots: 2 ** 32 - 1 } })
  expect(await ended).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'hello.slots: must be at most 10000' })
})

it.each([
  ['announced slots plus added_slots', 9_000, 1_001, 10_001],
  ['added_slots of 2^32 - 1', 0, 2 ** 32 - 1, 2 ** 32 - 1],
])('%s beyond 10,000 free slots end the stream with RESOURCE_EXHAUSTED naming added_slots', async (_, slots, added, total) => {
  const stream = env.raw.connect()
  const { answers, ended } = collect(stream)
  stream.write({ hello: { queues: ['caps-empty'], jobs: ['j'], slots } })
  await waitUntil(
    () => answers.length,
    (n) => n > 0,
  )
  // Up to the limit is fine; the stream is still open after this.
  stream.write({ added_slots: protocolLimits.slotsMax - slots })
  stream.write({ added_slots: added - (protocolLimits.slotsMax - slots) })
  expect(await ended).toEqual({
    code: grpc.status.RESOURCE_EXHAUSTED,
    details: `added_slots: would make ${total} slots free on this stream (hello.slots and every added_slots, less the tasks sent); at most 10000 may be`,
  })
})

it('operations beyond 20,000 unanswered on one stream are each refused with RESOURCE_EXHAUSTED; the others are performed', async () => {
  const stream = env.raw.connect()
  const { answers, ended } = collect(stream)
  stream.write({ hello: { queues: ['caps-empty'], jobs: ['j'], slots: 0 } })
  const sent = protocolLimits.operationsInFlightMax + 5
  // Releases of leases nobody holds: each is performed (batched) and answered FAILED_PRECONDITION.
  const operations = Array.from({ length: sent }, (_, i) => ({
    id: i + 1,
    release_run: { run_id: randomUUID(), lease_token: randomUUID() },
  }))
  stream.write({ operations })
  const results = (): OperationResult[] => answers.flatMap((answer) => answer.results)
  await waitUntil(
    () => results().length,
    (n) => n === sent,
  )
  expect(results().filter((result) => result.code === grpc.status.FAILED_PRECONDITION)).toHaveLength(protocolLimits.operationsInFlightMax)
  const refused = results().filter((result) => result.code === grpc.status.RESOURCE_EXHAUSTED)
  expect(refused.map((result) => result.id).sort((a, b) => a - b)).toEqual([20_001, 20_002, 20_003, 20_004, 20_005])
  expect(refused[0]!.message).toBe(
    'operations: 20000 operations of this stream are unanswered, the most there may be; send it again once answers arrive',
  )
  // Once answers are in, the stream takes operations again.
  stream.write({ operations: [{ id: sent + 1, release_run: { run_id: randomUUID(), lease_token: randomUUID() } }] })
  await waitUntil(
    () => results().length,
    (n) => n === sent + 1,
  )
  expect(results().at(-1)).toMatchObject({ id: sent + 1, code: grpc.status.FAILED_PRECONDITION })
  stream.end()
  expect((await ended).code).toBe(grpc.status.OK)
})

it('calls beyond the concurrent streams of a connection wait for one to end, rather than fail', async () => {
  const server = await startTestServer(env.databaseUrl, { maxConcurrentStreams: 2 })
  const raw = createRawClient(server.address)
  // Another connection to the same server.
  const other = createRawClient(server.address, { 'grpc.primary_user_agent': 'another-connection' })
  try {
    const answered: string[] = []
    // Two long-polls take both streams of the connection.
    const polls = [1, 2].map((n) =>
      raw.workers('ClaimTask', { queues: ['streams-full'], jobs: ['j'], wait_ms: 30_000 }).then((answer) => {
        answered.push(`poll ${n}`)
        return answer
      }),
    )
    await waitUntil(
      () => server.server.stats().workers,
      (waiting) => waiting === 2,
    )
    const enqueued = raw.runs('Enqueue', { run: { queue: 'streams-other', job: 'j' } }).then((answer) => {
      answered.push('enqueue')
      return answer
    })
    // An enqueue made later on the other connection is answered; this one waits.
    await other.runs('Enqueue', { run: { queue: 'streams-witness', job: 'j' } })
    expect(answered).toEqual([])
    // A run for the polls, enqueued through the test environment's server: one poll
    // takes it, and its stream ends.
    const { id } = await env.stackshift.queue('streams-full').enqueue('j', {})
    const { run_id } = await enqueued
    expect(run_id).toMatch(/^[0-9a-f-]{36}$/)
    expect(answered).toEqual([expect.stringMatching(/^poll /), 'enqueue'])
    const taken = await Promise.race(polls)
    expect(taken.tasks.map((task) => task.run_id)).toEqual([id])
  } finally {
    raw.close()
    other.close()
    await server.stop()
  }
})
