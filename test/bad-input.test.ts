import { status } from '@grpc/grpc-js'
import { InvalidArgumentError, NotFoundError } from '@stackshift/sdk'
import { describe, expect, it } from 'vitest'
import { checkHealth } from './support/health.js'
import { rejectionOf } from './support/raw-client.js'
import { useTestEnvironment } from './support/environment.js'

const env = useTestEnvironment()

async function storedRuns(): Promise<number> {
  const { rows } = await env.db.query<{ n: number }>('SELECT count(*)::int AS n FROM stackshift.runs')
  return rows[0]!.n
}

const validRun = { queue: 'q', job: 'j', payload_json: '{}' }

describe('enqueue refuses bad input with a status and a message naming the field', () => {
  it.each([
    ['an empty job name', { ...validRun, job: '' }, status.INVALID_ARGUMENT, 'run.job: must not be empty'],
    [
      'a 10,000-character job name',
      { ...validRun, job: 'x'.repeat(10_000) },
      status.INVALID_ARGUMENT,
      'run.job: must be at most 200 characters',
    ],
    [
      'a job name with a control character',
      { ...validRun, job: 'send\nemail' },
      status.INVALID_ARGUMENT,
      'run.job: must not contain control characters',
    ],
    [
      'a payload that is not JSON',
      { ...validRun, payload_json: '{"userId": ' },
      status.INVALID_ARGUMENT,
      'run.payload_json: is not valid JSON',
    ],
    [
      'a payload PostgreSQL cannot store',
      { ...validRun, payload_json: '"\\u0000"' },
      status.INVALID_ARGUMENT,
      'run.payload_json: contains \\u0000',
    ],
    [
      'a payload with a lone surrogate escape',
      { ...validRun, payload_json: '{"name": "\\ud800"}' },
      status.INVALID_ARGUMENT,
      'run.payload_json: has an unpaired surrogate \\ud800 at character 10, which cannot be stored',
    ],
    [
      'a payload with a number beyond PostgreSQL numeric',
      { ...validRun, payload_json: '[1, 1e1000000]' },
      status.INVALID_ARGUMENT,
      'run.payload_json: has a number PostgreSQL cannot store, 1e1000000 at character 4',
    ],
    [
      'a payload nested 2,000 levels deep',
      { ...validRun, payload_json: '['.repeat(2000) + ']'.repeat(2000) },
      status.INVALID_ARGUMENT,
      'run.payload_json: nests arrays and objects more than 1000 levels deep (at character 1000)',
    ],
    [
      'a small payload whose numbers PostgreSQL writes out as megabytes',
      { ...validRun, payload_json: JSON.stringify(Array.from({ length: 10 }, () => 0)).replaceAll('0', '1e131071') },
      status.RESOURCE_EXHAUSTED,
      'run.payload_json: is 1310731 bytes of JSON with its numbers written out as PostgreSQL stores them (without exponents); the limit is 1048576 bytes',
    ],
    [
      'a run_at beyond what a timestamp holds',
      { ...validRun, run_at: { seconds: 1e15 } },
      status.INVALID_ARGUMENT,
      'run.run_at: must be an instant from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z',
    ],
    [
      'a run_at before the year 1',
      { ...validRun, run_at: { seconds: -1e11 } },
      status.INVALID_ARGUMENT,
      'run.run_at: must be an instant from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z',
    ],
    [
      'an idempotency key with a NUL character',
      { ...validRun, idempotency_key: 'key\u0000' },
      status.INVALID_ARGUMENT,
      'run.idempotency_key: must not contain the NUL character (\\u0000)',
    ],
    [
      'a trace context key with a NUL character',
      { ...validRun, trace_context: { 'trace\u0000parent': 'x' } },
      status.INVALID_ARGUMENT,
      'keys must not contain the NUL character (\\u0000)',
    ],
    [
      'a payload over the size limit',
      { ...validRun, payload_json: JSON.stringify('x'.repeat(2 * 1024 * 1024)) },
      status.RESOURCE_EXHAUSTED,
      'run.payload_json: is 2097154 bytes of JSON; the limit is 1048576 bytes',
    ],
    ['a negative delay', { ...validRun, delay_ms: -5 }, status.INVALID_ARGUMENT, 'run.delay_ms: must not be negative'],
    [
      'a delay together with run_at',
      { ...validRun, delay_ms: 5, run_at: { seconds: 2_000_000_000 } },
      status.INVALID_ARGUMENT,
      'run.delay_ms: must not be set together with run_at',
    ],
    ['a priority out of range', { ...validRun, priority: 5000 }, status.INVALID_ARGUMENT, 'run.priority: must be at most 1000'],
    ['too many attempts', { ...validRun, max_attempts: 100_000 }, status.INVALID_ARGUMENT, 'run.max_attempts: must be at most 1000'],
    [
      'an idempotency key of 501 characters',
      { ...validRun, idempotency_key: 'k'.repeat(501) },
      status.INVALID_ARGUMENT,
      'run.idempotency_key: must be at most 500 characters',
    ],
  ])('%s', async (_, run, code, message) => {
    const before = await storedRuns()
    const rejection = await rejectionOf(env.raw.runs('Enqueue', { run }))
    expect(rejection.code).toBe(code)
    expect(rejection.details).toContain(message)
    expect(await storedRuns()).toBe(before)
  })

  it('a missing run', async () => {
    expect(await rejectionOf(env.raw.runs('Enqueue', { namespace: 'x' }))).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'run: is required',
    })
  })

  it('a malformed namespace', async () => {
    const rejection = await rejectionOf(env.raw.runs('Enqueue', { namespace: '../etc', run: validRun }))
    expect(rejection.code).toBe(status.INVALID_ARGUMENT)
    expect(rejection.details).toMatch(/^namespace: must start with a letter or digit/)
  })

  it('a batch with one bad entry stores none of it and names the entry', async () => {
    const before = await storedRuns()
    const rejection = await rejectionOf(env.raw.runs('EnqueueBatch', { runs: [validRun, { ...validRun, job: '' }, validRun] }))
    expect(rejection).toEqual({ code: status.INVALID_ARGUMENT, details: 'runs[1].job: must not be empty' })
    expect(await storedRuns()).toBe(before)
  })
})

describe('reads and worker writes refuse bad input', () => {
  it('an unknown run id is NOT_FOUND, whether or not it looks like a UUID', async () => {
    for (const runId of ['0190c5a5-0000-7000-8000-000000000000', 'does-not-exist']) {
      const rejection = await rejectionOf(env.raw.runs('GetRun', { run_id: runId }))
      expect(rejection.code).toBe(status.NOT_FOUND)
      expect(rejection.details).toContain(runId)
    }
    await expect(env.stackshift.getRun('0190c5a5-0000-7000-8000-000000000000')).rejects.toBeInstanceOf(NotFoundError)
    await expect(env.stackshift.waitForRun('0190c5a5-0000-7000-8000-000000000000', { timeoutMs: 100 })).rejects.toBeInstanceOf(
      NotFoundError,
    )
  })

  it('a run id that exists in another namespace is NOT_FOUND', async () => {
    const { run_id } = await env.raw.runs('Enqueue', { namespace: 'tenant-a', run: validRun })
    expect((await rejectionOf(env.raw.runs('GetRun', { namespace: 'tenant-b', run_id }))).code).toBe(status.NOT_FOUND)
  })

  it.each([
    ['ClaimTask without queues', 'ClaimTask', { jobs: ['j'] }, 'queues: must name at least one'],
    [
      'ClaimTask with a lease too short to heartbeat',
      'ClaimTask',
      { queues: ['q'], jobs: ['j'], lease_ms: 10 },
      'lease_ms: must be 0 or 500 to 3600000',
    ],
    [
      'CompleteStep with a malformed lease token',
      'CompleteStep',
      { run_id: '0190c5a5-0000-7000-8000-000000000000', lease_token: 'abc', step_id: 's' },
      'lease_token: must be a UUID',
    ],
    [
      'CompleteStep without a step id',
      'CompleteStep',
      { run_id: '0190c5a5-0000-7000-8000-000000000000', lease_token: '0190c5a5-0000-7000-8000-000000000000' },
      'step_id: must not be empty',
    ],
    [
      'FailRun without an error message',
      'FailRun',
      { run_id: '0190c5a5-0000-7000-8000-000000000000', lease_token: '0190c5a5-0000-7000-8000-000000000000', error: { name: 'E' } },
      'error.message: must not be empty',
    ],
    ['Heartbeat without leases', 'Heartbeat', { leases: [] }, 'leases: must name at least one lease'],
    [
      'SuspendRun sleeping until after the year 9999',
      'SuspendRun',
      {
        run_id: '0190c5a5-0000-7000-8000-000000000000',
        lease_token: '0190c5a5-0000-7000-8000-000000000000',
        step_id: 's',
        sleep: { wake_at: { seconds: 300_000_000_000 } },
      },
      'sleep.wake_at: must be an instant from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z',
    ],
  ] as const)('%s', async (_, method, request, message) => {
    const rejection = await rejectionOf(env.raw.workers(method, request))
    expect(rejection).toEqual({ code: status.INVALID_ARGUMENT, details: message })
  })

  it('a ListRuns filter with a NUL character is INVALID_ARGUMENT naming it', async () => {
    expect(await rejectionOf(env.raw.runs('ListRuns', { job: 'j\u0000' }))).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'job: must not contain the NUL character (\\u0000)',
    })
  })

  it('a step duration beyond 32 bits is INVALID_ARGUMENT; an error text with NUL characters is stored with U+FFFD instead', async () => {
    const { run_id } = await env.raw.runs('Enqueue', { run: { queue: 'odd-writes', job: 'j', max_attempts: 1 } })
    const { tasks } = await env.raw.workers('ClaimTask', { queues: ['odd-writes'], jobs: ['j'], wait_ms: 5000 })
    const lease = { run_id, lease_token: tasks[0]!.lease_token }
    expect(await rejectionOf(env.raw.workers('CompleteStep', { ...lease, step_id: 's', duration_ms: 2 ** 32 - 1 }))).toEqual({
      code: status.INVALID_ARGUMENT,
      details: 'duration_ms: must be at most 2147483647 (about 24.8 days)',
    })
    await env.raw.workers('FailRun', { ...lease, error: { name: 'Bad\u0000Error', message: 'read \u0000 from the wire' } })
    const { run } = await env.raw.runs('GetRun', { run_id })
    expect(run!.error).toMatchObject({ name: 'Bad\ufffdError', message: 'read \ufffd from the wire' })
  })

  it('a step result that is not JSON is refused and not stored', async () => {
    const { run_id } = await env.raw.runs('Enqueue', { run: { queue: 'steps-q', job: 'j' } })
    const { tasks } = await env.raw.workers('ClaimTask', { queues: ['steps-q'], jobs: ['j'], wait_ms: 5000 })
    const rejection = await rejectionOf(
      env.raw.workers('CompleteStep', { run_id, lease_token: tasks[0]!.lease_token, step_id: 's', result_json: 'NaN' }),
    )
    expect(rejection.code).toBe(status.INVALID_ARGUMENT)
    expect(rejection.details).toMatch(/^result_json: is not valid JSON/)
    const { rows } = await env.db.query<{ n: number }>('SELECT count(*)::int AS n FROM stackshift.steps WHERE run_id = $1', [run_id])
    expect(rows[0]!.n).toBe(0)
  })
})

describe('the SDK checks what it can before sending', () => {
  it('a negative or malformed delay is an InvalidArgumentError naming the option', async () => {
    await expect(env.stackshift.queue('q').enqueue('j', {}, { delay: -5 })).rejects.toThrow(
      new InvalidArgumentError('delay must be a non-negative number of milliseconds, got -5'),
    )
    await expect(env.stackshift.queue('q').enqueue('j', {}, { delay: 'soon' })).rejects.toThrow(/delay must be a duration like "500ms"/)
  })

  it('a payload that cannot be serialized as JSON is an InvalidArgumentError', async () => {
    const circular: Record<string, unknown> = {}
    circular.self = circular
    await expect(env.stackshift.queue('q').enqueue('j', circular)).rejects.toBeInstanceOf(InvalidArgumentError)
    await expect(env.stackshift.queue('q').enqueue('j', { amount: 10n })).rejects.toThrow(/payload is not JSON-serializable/)
  })

  it('worker options out of range are a TypeError naming the option', () => {
    expect(() => env.stackshift.worker({ queues: ['q'], concurrency: 0 })).toThrow(/options.concurrency must be a positive integer, got 0/)
    expect(() => env.stackshift.worker({ queues: ['q'], prefetch: -1 })).toThrow(/options.prefetch must be a non-negative integer, got -1/)
    expect(() => env.stackshift.worker({ queues: ['q'], concurrency: 9_000, prefetch: 2_000 })).toThrow(
      'worker options.concurrency + options.prefetch must be at most 10000, got 11000',
    )
    // The default prefetch stays within the server's limit for any concurrency it accepts.
    expect(() => env.stackshift.worker({ queues: ['q'], concurrency: 9_000 })).not.toThrow()
  })

  it('an empty job name reaches the server and comes back as InvalidArgumentError', async () => {
    await expect(env.stackshift.queue('q').enqueue('', {})).rejects.toThrow(new InvalidArgumentError('run.job: must not be empty'))
  })
})

it('after all of that the server is healthy and still enqueues', async () => {
  expect(await checkHealth(env.server.address)).toBe('SERVING')
  expect(await checkHealth(env.server.address, 'stackshift.jobs.v1.RunService')).toBe('SERVING')
  const run = await env.stackshift.queue('q').enqueue('j', { ok: true })
  expect((await env.stackshift.getRun(run.id)).payload).toEqual({ ok: true })
})
