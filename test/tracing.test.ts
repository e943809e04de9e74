import { Metadata, status } from '@grpc/grpc-js'
import { type Attributes, SpanKind, SpanStatusCode } from '@opentelemetry/api'
import { describe, expect, it } from 'vitest'
import { useTestEnvironment } from './support/environment.js'
import { type OtlpSpan, OtlpSpanKind, startOtlpCollector } from './support/otlp-collector.js'
import { ChildScript } from './support/processes.js'
import { createRawClient, rejectionOf } from './support/raw-client.js'
import { waitUntil } from './support/wait-until.js'

const env = useTestEnvironment()

interface ExportedSpan {
  name: string
  kind: SpanKind
  traceId: string
  spanId: string
  parentSpanId: string | undefined
  attributes: Attributes
  status: { code: SpanStatusCode; message?: string }
  events: string[]
  startTime: [number, number]
}

describe('OpenTelemetry', () => {
  it('one trace holds the enqueue, the server RPC and SQL spans, every attempt (retried, resumed after a sleep) and every step', async () => {
    const child = new ChildScript('test/fixtures/traced-run.ts', { DATABASE_URL: env.databaseUrl })
    let line: string
    try {
      line = await child.waitForLine(/^RESULT /, 100_000)
    } finally {
      await child.kill()
    }
    const result = JSON.parse(line.slice('RESULT '.length)) as { runId: string; status: string; spans: ExportedSpan[] }
    expect(result.status).toBe('completed')

    const root = single(result.spans, (s) => s.name === 'checkout request')
    const inTrace = result.spans.filter((s) => s.traceId === root.traceId)
    const byId = new Map(inTrace.map((s) => [s.spanId, s]))
    const parentOf = (span: ExportedSpan) => (span.parentSpanId ? byId.get(span.parentSpanId) : undefined)
    const isUnder = (span: ExportedSpan, ancestor: ExportedSpan): boolean => {
      for (let parent = parentOf(span); parent; parent = parentOf(parent)) if (parent.spanId === ancestor.spanId) return true
      return false
    }
    const children = (parent: ExportedSpan) => inTrace.filter((s) => s.parentSpanId === parent.spanId)

    // The enqueue: SDK span -> grpc client span -> server span -> SQL spans.
    const enqueue = single(inTrace, (s) => s.name === 'enqueue tracedJob')
    expect(enqueue.kind).toBe(SpanKind.PRODUCER)
    expect(enqueue.parentSpanId).toBe(root.spanId)
    expect(enqueue.attributes['stackshift.run.id']).toBe(result.runId)
    const enqueueClient = single(children(enqueue), (s) => s.kind === SpanKind.CLIENT && s.name.endsWith('RunService/Enqueue'))
    const enqueueServer = single(children(enqueueClient), (s) => s.kind === SpanKind.SERVER)
    expect(enqueueServer.name).toBe(enqueueClient.name)
    const enqueueSql = inTrace.filter((s) => isSqlSpan(s) && isUnder(s, enqueueServer))
    expect(enqueueSql.some((s) => /INSERT/i.test(String(s.attributes['db.statement'] ?? s.attributes['db.query.text'] ?? s.name)))).toBe(
      true,
    )

    // Three executions, each a child of the enqueue span: attempt 1 fails, attempt 2 sleeps, then resumes (still
    // attempt 2: a sleep is not a failed attempt) and completes.
    const attempts = inTrace.filter((s) => s.name === 'run tracedJob').sort(byStart)
    expect(attempts.map((s) => s.attributes['stackshift.attempt'])).toEqual([1, 2, 2])
    for (const attempt of attempts) {
      expect(attempt.kind).toBe(SpanKind.CONSUMER)
      expect(attempt.parentSpanId).toBe(enqueue.spanId)
      expect(attempt.attributes['stackshift.run.id']).toBe(result.runId)
    }
    expect(attempts.map((s) => s.attributes['stackshift.outcome'])).toEqual(['error', 'suspended', 'ok'])
    expect(attempts[0]!.status.code).toBe(SpanStatusCode.ERROR)
    expect(attempts[0]!.status.message).toBe('the first attempt fails')
    expect(attempts[0]!.events).toContain('exception')
    expect(attempts.slice(1).map((s) => s.status.code)).toEqual([SpanStatusCode.UNSET, SpanStatusCode.UNSET])

    // Each attempt's steps, in order, with their ids, attempt and outcome.
    const stepsOf = (attempt: ExportedSpan) =>
      children(attempt)
        .filter((s) => s.attributes['stackshift.step.id'] !== undefined)
        .map((s) => [s.name, s.attributes['stackshift.step.id'], s.attributes['stackshift.attempt'], s.attributes['stackshift.outcome']])
    expect(stepsOf(attempts[0]!)).toEqual([
      ['step first', 'first', 1, 'ok'],
      ['state.increment', 'state.increment:traced:counter', 1, 'ok'],
    ])
    expect(stepsOf(attempts[1]!)).toEqual([
      ['step first', 'first', 2, 'memoized'],
      ['state.increment', 'state.increment:traced:counter', 2, 'memoized'],
      ['sleep nap', 'nap', 2, 'suspended'],
    ])
    expect(stepsOf(attempts[2]!)).toEqual([
      ['step first', 'first', 2, 'memoized'],
      ['state.increment', 'state.increment:traced:counter', 2, 'memoized'],
      ['sleep nap', 'nap', 2, 'memoized'],
      ['step second', 'second', 2, 'ok'],
    ])

    // A State Store operation in a run reaches the server in the same trace, down to its SQL.
    const increment = single(children(attempts[0]!), (s) => s.name === 'state.increment')
    const incrementServer = single(inTrace, (s) => s.kind === SpanKind.SERVER && s.name.endsWith('StateService/Increment'))
    expect(isUnder(incrementServer, increment)).toBe(true)
    expect(inTrace.some((s) => isSqlSpan(s) && isUnder(s, incrementServer))).toBe(true)
  }, 120_000)

  it("the server process started with OTEL_EXPORTER_OTLP_ENDPOINT exports its RPC and SQL spans in the caller's trace", async () => {
    const collector = await startOtlpCollector()
    const server = new ChildScript('server/src/main.ts', {
      DATABASE_URL: env.databaseUrl,
      STACKSHIFT_HOST: '127.0.0.1',
      STACKSHIFT_PORT: '0',
      STACKSHIFT_METRICS_PORT: '0',
      STACKSHIFT_CONSOLE_PORT: '0',
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
      OTEL_BSP_SCHEDULE_DELAY: '100',
    })
    try {
      const listening = JSON.parse(await server.waitForLine(/StackShift server listening/)) as { port: number }
      const address = `127.0.0.1:${listening.port}`
      const traceId = '5b8efff798038103d269b633813fc60c'
      const metadata = new Metadata()
      // The caller's span: the parent the traceparent header names.
      const callerSpanId = 'eee19b7ec3c1b174'
      metadata.set('traceparent', `00-${traceId}-${callerSpanId}-01`)
      const client = createRawClient(address)
      const { run_id: runId } = await client.runs('Enqueue', { run: { queue: 'exported', job: 'exportedJob' } }, metadata)
      client.close()

      const isEnqueueServerSpan = (span: OtlpSpan) =>
        span.kind === OtlpSpanKind.server && span.name === 'grpc.stackshift.jobs.v1.RunService/Enqueue' && span.traceId === traceId
      const isRunInsert = (span: OtlpSpan) =>
        span.name.startsWith('pg.query') &&
        span.attributes['db.system.name'] === 'postgresql' &&
        /INSERT INTO stackshift\.runs/.test(String(span.attributes['db.query.text']))
      // Exports come in batches: wait until the RPC span and its SQL have both arrived.
      const spans = await waitUntil(
        () => collector.spans(),
        (all) => all.some((rpc) => isEnqueueServerSpan(rpc) && all.some((sql) => isRunInsert(sql) && sql.parentSpanId === rpc.spanId)),
      )
      const rpc = spans.filter(isEnqueueServerSpan)
      expect(rpc.map((span) => [span.serviceName, span.parentSpanId])).toEqual([['stackshift-server', callerSpanId]])
      const insert = spans.filter((span) => isRunInsert(span) && span.parentSpanId === rpc[0]!.spanId)
      expect(insert.map((span) => [span.traceId, span.serviceName])).toEqual([[traceId, 'stackshift-server']])
      // That insert stored the run this call enqueued.
      const { rows } = await env.db.query<{ queue: string }>(`SELECT queue FROM stackshift.runs WHERE id = $1`, [runId])
      expect(rows).toEqual([{ queue: 'exported' }])
    } finally {
      await server.kill('SIGTERM')
      collector.close()
    }
  })

  it('with no OpenTelemetry SDK registered, a run stores no trace context', async () => {
    const run = await env.stackshift.queue('untraced').enqueue('nothing', {})
    const { rows } = await env.db.query(`SELECT trace_context FROM stackshift.runs WHERE id = $1`, [run.id])
    expect(rows).toEqual([{ trace_context: null }])
    const fetched = await env.raw.runs('GetRun', { run_id: run.id })
    expect(fetched.run!.trace_context).toEqual({})
  })

  it('a trace context is stored as given and handed to the worker; an oversized one is refused and nothing is stored', async () => {
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
    const { run_id: runId } = await env.raw.runs('Enqueue', {
      run: { queue: 'carried', job: 'carry', trace_context: { traceparent, tracestate: 'vendor=1' } },
    })
    const claimed = await env.raw.workers('ClaimTask', { queues: ['carried'], jobs: ['carry'], max_tasks: 1, wait_ms: 5000 })
    expect(claimed.tasks.map((task) => [task.run_id, task.trace_context])).toEqual([[runId, { traceparent, tracestate: 'vendor=1' }]])

    const tooMany = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`key${i}`, 'v']))
    const refusals = [
      [{ trace_context: tooMany }, 'run.trace_context: must hold at most 16 entries'],
      [{ trace_context: { ['k'.repeat(65)]: 'v' } }, `run.trace_context.${'k'.repeat(65)}: keys must be 1 to 64 characters`],
      [{ trace_context: { traceparent: 'x'.repeat(1025) } }, 'run.trace_context.traceparent: values must be at most 1024 characters'],
    ] as const
    for (const [fields, message] of refusals) {
      const refused = await rejectionOf(env.raw.runs('Enqueue', { run: { queue: 'refused', job: 'carry', ...fields } }))
      expect([refused.code, refused.details]).toEqual([status.INVALID_ARGUMENT, message])
    }
    const { rows } = await env.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stackshift.runs WHERE queue = 'refused'`)
    expect(rows[0]!.n).toBe(0)
  })
})

function single(spans: ExportedSpan[], predicate: (span: ExportedSpan) => boolean): ExportedSpan {
  const found = spans.filter(predicate)
  if (found.length !== 1) throw new Error(`expected one matching span, found ${found.length}: ${found.map((s) => s.name).join(', ')}`)
  return found[0]!
}

function isSqlSpan(span: ExportedSpan): boolean {
  return span.attributes['db.system'] === 'postgresql' || span.attributes['db.system.name'] === 'postgresql'
}

function byStart(a: ExportedSpan, b: ExportedSpan): number {
  return a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]
}
