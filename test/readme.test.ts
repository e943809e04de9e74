import { readFile } from 'node:fs/promises'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createTestDatabase } from './support/database.js'
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
