import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { StackShift } from '@stackshift/sdk'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { ChildScript } from './support/processes.js'

/*
 * `npm start` without DATABASE_URL: the server runs its own PostgreSQL, whose
 * data lives in the data directory and survives restarts, also after the
 * server was killed without a chance to stop it.
 */

let dataDir: string

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'stackshift-embedded-'))
})

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true })
})

async function startServerProcess(): Promise<{ process: ChildScript; address: string }> {
  const process = new ChildScript('server/src/main.ts', {
    DATABASE_URL: '',
    STACKSHIFT_DATA_DIR: dataDir,
    STACKSHIFT_EMBEDDED_PG_PORT: '0',
    STACKSHIFT_HOST: '127.0.0.1',
    STACKSHIFT_PORT: '0',
  })
  // Starting PostgreSQL (initdb the first time) on a busy machine is the slow part.
  const line = await process.waitForLine(/StackShift server listening/, 50_000)
  return { process, address: `127.0.0.1:${(JSON.parse(line) as { port: number }).port}` }
}

it('without DATABASE_URL the server starts an embedded PostgreSQL whose data survives a restart and a SIGKILL', async () => {
  const first = await startServerProcess()
  let client = new StackShift({ address: first.address })
  const run = await client.queue('persisted').enqueue('keepMe', { note: 'survives restarts' })
  client.close()
  await first.process.kill('SIGTERM')
  expect(first.process.process.exitCode).toBe(0)

  const second = await startServerProcess()
  client = new StackShift({ address: second.address })
  expect((await client.getRun(run.id)).payload).toEqual({ note: 'survives restarts' })
  client.close()
  // Killed without a chance to stop its PostgreSQL, which keeps running.
  await second.process.kill('SIGKILL')

  const third = await startServerProcess()
  try {
    client = new StackShift({ address: third.address })
    expect((await client.getRun(run.id)).status).toBe('queued')
    client.close()
    expect(third.process.lines.some((line) => line.includes('stopping a PostgreSQL left running by an earlier server process'))).toBe(true)
  } finally {
    await third.process.kill('SIGTERM')
  }
  // Three starts of up to 50 s each.
}, 180_000)

it('a program that runs an embedded PostgreSQL keeps the exit code it sets', async () => {
  const child = new ChildScript('test/fixtures/embedded-exit-code.ts', { EXIT_CODE: '3' })
  const exited = once(child.process, 'exit')
  await child.waitForLine(/^stopped$/, 50_000)
  const [code] = (await exited) as [number | null]
  expect(code).toBe(3)
})
