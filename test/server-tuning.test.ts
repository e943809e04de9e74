import { readdirSync, readFileSync } from 'node:fs'
import { StackShift } from '@stackshift/sdk'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase } from './support/database.js'
import { ChildScript } from './support/processes.js'

/*
 * The server's tuning (server/src/tuning.ts) is opt-in: started as it comes,
 * the server leaves its threads' priorities alone; with
 * STACKSHIFT_BACKGROUND_THREADS=idle it keeps V8's helper threads (compiler,
 * garbage collector) below the thread that serves requests. Read from /proc,
 * so Linux only.
 */

const SCHED_IDLE = 5

interface ThreadPriority {
  id: number
  policy: number
  nice: number
}

function threadPriorities(pid: number): ThreadPriority[] {
  return readdirSync(`/proc/${pid}/task`).map((task) => {
    // Fields after the command name, which is in parentheses and may hold spaces or ')': state is field 3.
    const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { id: Number(task), nice: Number(fields[19 - 3]), policy: Number(fields[41 - 3]) }
  })
}

let databaseUrl: string
const servers: ChildScript[] = []

async function startServerProcess(env: Record<string, string>): Promise<{ process: ChildScript; address: string }> {
  const process = new ChildScript('server/src/main.ts', {
    DATABASE_URL: databaseUrl,
    STACKSHIFT_HOST: '127.0.0.1',
    STACKSHIFT_PORT: '0',
    STACKSHIFT_LOG_LEVEL: 'info',
    ...env,
  })
  servers.push(process)
  const line = await process.waitForLine(/StackShift server listening/)
  return { process, address: `127.0.0.1:${(JSON.parse(line) as { port: number }).port}` }
}

beforeAll(async () => {
  databaseUrl = await createTestDatabase()
})

afterAll(async () => {
  await Promise.all(servers.map((server) => server.kill('SIGTERM')))
})

describe.runIf(process.platform === 'linux')('helper thread priority', () => {
  it('by default every thread stays at normal priority', async () => {
    const { process: server } = await startServerProcess({})
    const threads = threadPriorities(server.process.pid!)
    // V8's platform starts at least four helpers: there are threads to leave alone.
    expect(threads.length).toBeGreaterThanOrEqual(5)
    for (const thread of threads) expect(thread).toMatchObject({ policy: 0, nice: 0 })
    expect(server.lines.some((line) => line.includes('helper threads lowered'))).toBe(false)
  })

  it('with STACKSHIFT_BACKGROUND_THREADS=idle the helper threads alive at start are lowered and the event loop thread is not, and runs still complete', async () => {
    const { process: server, address } = await startServerProcess({ STACKSHIFT_BACKGROUND_THREADS: 'idle' })
    const pid = server.process.pid!
    const logged = JSON.parse(await server.waitForLine(/helper threads lowered/)) as { threads: number; policy: string }
    expect(['SCHED_IDLE', 'nice 19']).toContain(logged.policy)
    // V8's platform starts at least four helpers.
    expect(logged.threads).toBeGreaterThanOrEqual(4)

    const threads = threadPriorities(pid)
    const main = threads.find((thread) => thread.id === pid)!
    expect(main).toMatchObject({ policy: 0, nice: 0 })
    const lowered = threads.filter((thread) => (logged.policy === 'SCHED_IDLE' ? thread.policy === SCHED_IDLE : thread.nice === 19))
    expect(lowered.length).toBeGreaterThanOrEqual(4)

    const client = new StackShift({ address })
    client.job('echo', ({ payload }) => payload)
    const worker = client.worker({ queues: ['priority'] })
    await worker.start()
    try {
      const run = await client.queue('priority').enqueue('echo', { ok: true })
      expect(await client.waitForRun(run.id, { timeoutMs: 10_000 })).toMatchObject({ status: 'completed', result: { ok: true } })
    } finally {
      await worker.stop()
      client.close()
    }
  })
})
