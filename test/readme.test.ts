import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createTestDatabase } from './support/database.js'
import { startOtlpCollector } from './support/otlp-collector.js'
import { ChildScript } from './support/processes.js'
import { type TestServer, startTestServer } from './support/server.js'

let server: TestServer

beforeAll(async () => {
  server = await startTestServer(await createTestDatabase())
})

afterAll(async () => {
  await server.stop()
})

it('the README quickstart is examples/quickstart.ts, and it runs as shown', async () => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8')
  const example = await readFile(new URL('../examples/quickstart.ts', import.meta.url), 'utf8')
  const quickstart = readme.slice(readme.indexOf('## Quickstart'))
  const block = /```ts\n([\s\S]*?)```/.exec(quickstart)?.[1]
  expect(block).toBe(example)

  const script = new ChildScript('examples/quickstart.ts', { STACKSHIFT_ADDRESS: server.address })
  try {
    expect(await script.waitForLine(/^completed /)).toBe('completed { provisioned: true } 1')
    await new Promise((resolve) => script.process.once('exit', resolve))
    expect(script.process.exitCode).toBe(0)
  } finally {
    await script.kill()
  }
})

it('the README tracing setup is examples/tracing.ts, and with it the quickstart exports its trace over OTLP', async () => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8')
  const example = await readFile(new URL('../examples/tracing.ts', import.meta.url), 'utf8')
  const section = readme.slice(readme.indexOf('## Tracing and logs'))
  expect(/```ts\n([\s\S]*?)```/.exec(section)?.[1]).toBe(example)

  const collector = await startOtlpCollector()
  // A database of its own: on the first test's, the quickstart's idempotency key would return the finished run.
  const ownServer = await startTestServer(await createTestDatabase())
  const script = new ChildScript(
    'examples/quickstart.ts',
    { STACKSHIFT_ADDRESS: ownServer.address, OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint },
    ['--import', './examples/tracing.ts'],
  )
  try {
    await script.waitForLine(/^completed /)
    await new Promise((resolve) => script.process.once('exit', resolve))
    expect(script.process.exitCode).toBe(0)
  } finally {
    await script.kill()
    collector.close()
    await ownServer.stop()
  }
  const spans = collector.spans()
  const names = [
    'enqueue provisionAfterPayment',
    'grpc.stackshift.jobs.v1.RunService/Enqueue',
    'run provisionAfterPayment',
    'step verify-payment',
    'step provision-customer-resources',
  ]
  const exportedNames = spans.map((span) => span.name)
  for (const name of names) expect(exportedNames).toContain(name)
  // One trace, from the enqueue to the steps.
  expect(new Set(spans.filter((span) => names.includes(span.name)).map((span) => span.traceId)).size).toBe(1)
})

it('the README schedules example is examples/schedules.ts, and it runs as shown', async () => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8')
  const example = await readFile(new URL('../examples/schedules.ts', import.meta.url), 'utf8')
  const section = readme.slice(readme.indexOf('### Schedules'))
  expect(/```ts\n([\s\S]*?)```/.exec(section)?.[1]).toBe(example)

  const script = new ChildScript('examples/schedules.ts', { STACKSHIFT_ADDRESS: server.address })
  try {
    expect(await script.waitForLine(/fire times ahead$/)).toBe('5 fire times ahead')
    expect(await script.waitForLine(/^triggered /)).toBe('triggered completed')
    expect(await script.waitForLine(/^backfilled /)).toBe('backfilled true')
    expect(await script.waitForLine(/^nightly-report /)).toBe('nightly-report 5')
    await new Promise((resolve) => script.process.once('exit', resolve))
    expect(script.process.exitCode).toBe(0)
  } finally {
    await script.kill()
  }
})

it('the README flow-control example is examples/flow-control.ts, and it runs as shown', async () => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8')
  const example = await readFile(new URL('../examples/flow-control.ts', import.meta.url), 'utf8')
  const section = readme.slice(readme.indexOf('### Flow control'))
  expect(/```ts\n([\s\S]*?)```/.exec(section)?.[1]).toBe(example)

  // A database of its own: the example's job and queue policies stay behind.
  const ownServer = await startTestServer(await createTestDatabase())
  const script = new ChildScript('examples/flow-control.ts', { STACKSHIFT_ADDRESS: ownServer.address })
  try {
    expect(await script.waitForLine(/completed/)).toBe('acme completed, globex completed')
    await new Promise((resolve) => script.process.once('exit', resolve))
    expect(script.process.exitCode).toBe(0)
  } finally {
    await script.kill()
    await ownServer.stop()
  }
})
