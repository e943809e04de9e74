import { status } from '@grpc/grpc-js'
import { expect, it } from 'vitest'
import { type RawStream, rejectionOf } from './support/raw-client.js'
import type { ConnectResponse, OperationResult } from './support/raw-messages.js'
import { useTestEnvironment } from './support/environment.js'
import { waitUntil } from './support/wait-until.js'

const env = useTestEnvironment()

it('a client built from the .proto files alone enqueues, claims, completes a step and the run', async () => {
  const { run_id, deduplicated } = await env.raw.runs('Enqueue', {
    namespace: 'polyglot',
    run: { queue: 'reports', job: 'buildReport', payload_json: '{"reportId":"r_1"}' },
  })
  expect(deduplicated).toBe(false)

  const { tasks } = await env.raw.workers('ClaimTask', {
    namespace: 'polyglot',
    worker_id: 'python-like-client',
    queues: ['reports'],
    jobs: ['buildReport'],
    max_tasks: 5,
    wait_ms: 5000,
  })
  expect(tasks).toHaveLength(1)
  const task = tasks[0]!
  expect(task).toMatchObject({
    run_id,
    job: 'buildReport',
    queue: 'reports',
    attempt: 1,
    payload_json: '{"reportId": "r_1"}',
    steps: [],
    lease_ms: 30_000,
  })
  // The deadline is on the database clock, lease_ms after the claim.
  const leaseSeconds = task.lease_expires_at!.seconds - task.available_at!.seconds
  expect(leaseSeconds).toBeGreaterThanOrEqual(29)
  expect(leaseSeconds).toBeLessThanOrEqual(31)

  await env.raw.workers('CompleteStep', {
    run_id,
    lease_token: task.lease_token,
    step_id: 'collect-data',
    result_json: '{"rows":42}',
    duration_ms: 12,
  })
  await env.raw.workers('Heartbeat', { leases: [{ run_id, lease_token: task.lease_token }] })
  await env.raw.workers('CompleteRun', { run_id, lease_token: task.lease_token, result_json: '{"url":"https://example.com/r_1.pdf"}' })

  const { run } = await env.raw.runs('GetRun', { namespace: 'polyglot', run_id })
  expect(run).toMatchObject({
    id: run_id,
    status: 'RUN_STATUS_COMPLETED',
    result_json: '{"url": "https://example.com/r_1.pdf"}',
    attempts: 1,
    steps: [{ id: 'collect-data', status: 'STEP_STATUS_COMPLETED', result_json: '{"rows": 42}', attempt: 1 }],
    attempt_history: [{ attempt: 1, outcome: 'ATTEMPT_OUTCOME_COMPLETED' }],
  })

  // The lease ended with the run: a late write under it is refused.
  const late = await rejectionOf(
    env.raw.workers('CompleteStep', { run_id, lease_token: task.lease_token, step_id: 'late', result_json: '1' }),
  )
  expect(late.code).toBe(status.FAILED_PRECONDITION)
})

it('the Connect stream works from the .proto files alone: hello, task, operations, results', async () => {
  const { run_id } = await env.raw.runs('Enqueue', {
    namespace: 'polyglot',
    run: { queue: 'stream-q', job: 'streamJob', payload_json: '[1,2]' },
  })
  const stream = env.raw.connect()
  const messages: ConnectResponse[] = []
  const next = () =>
    new Promise<ConnectResponse>((resolve) => {
      const take = () => {
        const message = messages.shift()
        if (message) resolve(message)
        else
          stream.once('data', (m: ConnectResponse) => {
            messages.push(m)
            take()
          })
      }
      take()
    })
  stream.write({ hello: { namespace: 'polyglot', worker_id: 'raw-stream', queues: ['stream-q'], jobs: ['streamJob'], slots: 1 } })
  const welcome = await next()
  expect(welcome.welcome).toMatchObject({ worker_id: 'raw-stream', lease_ms: 30_000, heartbeat_interval_ms: 10_000 })
  const withTask = welcome.tasks.length > 0 ? welcome : await next()
  const task = withTask.tasks[0]!
  expect(task).toMatchObject({ run_id, payload_json: '[1, 2]', attempt: 1 })

  stream.write({
    operations: [
      { id: 1, complete_step: { run_id, lease_token: task.lease_token, step_id: 's', result_json: 'true' } },
      { id: 2, complete_step: { run_id, lease_token: 'not-a-token', step_id: 's2' } },
    ],
  })
  const results = new Map<number, OperationResult>()
  while (results.size < 2) for (const result of (await next()).results) results.set(result.id, result)
  expect(results.get(1)).toMatchObject({ code: status.OK, result: 'complete_step' })
  expect(results.get(2)).toMatchObject({ code: status.INVALID_ARGUMENT, message: 'complete_step.lease_token: must be a UUID' })

  stream.write({ operations: [{ id: 3, complete_run: { run_id, lease_token: task.lease_token, result_json: '"ok"' } }], added_slots: 1 })
  const answer = await next()
  expect(answer.results).toEqual([expect.objectContaining({ id: 3, code: status.OK })])
  stream.end()

  const { run } = await env.raw.runs('GetRun', { namespace: 'polyglot', run_id })
  expect(run).toMatchObject({ status: 'RUN_STATUS_COMPLETED', result_json: '"ok"', steps: [{ id: 's', result_json: 'true' }] })
})

/** The stream's messages, in order, and whether the server has ended it. */
function record(stream: RawStream<ConnectResponse>) {
  const messages: ConnectResponse[] = []
  const ended = new Promise<void>((resolve) => stream.on('end', resolve))
  stream.on('data', (message: ConnectResponse) => messages.push(message))
  stream.on('error', () => {})
  return { messages, ended }
}

it('a worker that half-closes right after its last operations still gets every answer before the stream ends', async () => {
  const { run_id } = await env.raw.runs('Enqueue', { run: { queue: 'half-close', job: 'halfJob' } })
  const task = (await env.raw.workers('ClaimTask', { queues: ['half-close'], jobs: ['halfJob'], max_tasks: 1, wait_ms: 5000 })).tasks[0]!
  const stream = env.raw.connect()
  const { messages, ended } = record(stream)
  stream.write({ hello: { worker_id: 'half-closer', queues: ['half-close'], jobs: ['halfJob'], slots: 0 } })
  // Operations of one message run concurrently: the step is answered before the run is completed.
  stream.write({ operations: [{ id: 1, complete_step: { run_id, lease_token: task.lease_token, step_id: 'only', result_json: '1' } }] })
  await waitUntil(
    () => messages.flatMap((message) => message.results).length,
    (count) => count === 1,
  )
  stream.write({ operations: [{ id: 2, complete_run: { run_id, lease_token: task.lease_token, result_json: '"done"' } }] })
  stream.end()
  await ended
  const answers = messages.flatMap((message) => message.results).map((result) => [result.id, result.code])
  expect(answers.sort()).toEqual([
    [1, status.OK],
    [2, status.OK],
  ])
  const { run } = await env.raw.runs('GetRun', { run_id })
  expect(run).toMatchObject({ status: 'RUN_STATUS_COMPLETED', result_json: '"done"' })
})

it('drain is answered with drained, after which no task arrives on the stream', async () => {
  const stream = env.raw.connect()
  const { messages, ended } = record(stream)
  stream.write({ hello: { worker_id: 'drainer', queues: ['drain-q'], jobs: ['drainJob'], slots: 5 } })
  const { run_id: before } = await env.raw.runs('Enqueue', { run: { queue: 'drain-q', job: 'drainJob' } })
  await waitUntil(
    () => messages.flatMap((message) => message.tasks),
    (tasks) => tasks.length === 1,
  )
  stream.write({ drain: true })
  await waitUntil(
    () => messages.filter((message) => message.drained).length,
    (count) => count === 1,
  )
  const { run_id: after } = await env.raw.runs('Enqueue', { run: { queue: 'drain-q', job: 'drainJob' } })
  // The run enqueued after the drain stays queued for another worker; the held one is handed back.
  const held = messages.flatMap((message) => message.tasks)[0]!
  expect(held.run_id).toBe(before)
  stream.write({ operations: [{ id: 1, release_run: { run_id: before, lease_token: held.lease_token } }] })
  stream.end()
  await ended
  const drainedAt = messages.findIndex((message) => message.drained)
  expect(messages.slice(drainedAt + 1).flatMap((message) => message.tasks)).toEqual([])
  expect(messages.flatMap((message) => message.results).map((result) => [result.id, result.code])).toEqual([[1, status.OK]])
  for (const runId of [before, after]) {
    const { run } = await env.raw.runs('GetRun', { run_id: runId })
    expect([runId, run!.status, run!.attempts]).toEqual([runId, 'RUN_STATUS_QUEUED', 0])
  }
})

it('tasks with large payloads reach a client with the common 4 MiB receive limit, split over several messages', async () => {
  const payload_json = JSON.stringify({ blob: 'x'.repeat(800 * 1024) })
  const runs = Array.from({ length: 8 }, () => ({ queue: 'large', job: 'largeJob', payload_json }))
  const { results: enqueued } = await env.raw.runs('EnqueueBatch', { runs })
  const stream = env.raw.connect()
  const { messages } = record(stream)
  let failure: Error | undefined
  stream.on('error', (error: Error) => (failure = error))
  stream.write({ hello: { worker_id: 'small-receiver', queues: ['large'], jobs: ['largeJob'], slots: 8 } })
  const tasks = await waitUntil(
    () => {
      if (failure) throw failure
      return messages.flatMap((message) => message.tasks)
    },
    (received) => received.length === 8,
  )
  expect(tasks.map((task) => task.run_id).sort()).toEqual(enqueued.map((run) => run.run_id).sort())
  expect(messages.filter((message) => message.tasks.length > 0).length).toBeGreaterThan(1)
  stream.write({
    operations: tasks.map((task, i) => ({
      id: i + 1,
      release_run: { run_id: task.run_id, lease_token: task.lease_token },
    })),
  })
  stream.end()
})
