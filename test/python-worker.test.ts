import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { useTestEnvironment } from './support/environment.js'

/*
 * The protocol from a second language: examples/python-worker/worker.py, with
 * stubs that protoc generates from the .proto files, executes runs that the
 * TypeScript SDK enqueues, against the real server.
 */

const exampleDir = fileURLToPath(new URL('../examples/python-worker/', import.meta.url))
const protoDir = fileURLToPath(new URL('../proto/', import.meta.url))
/** Debian's python3 has the python3-grpcio and python3-protobuf packages; a pyenv python3 first on PATH may not. */
const python = process.env.STACKSHIFT_TEST_PYTHON ?? '/usr/bin/python3'
/** worker.py's exit status for --crash-after-step. */
const crashExitCode = 75

/** What this machine lacks to run the Python worker, each with how to install it. */
function findMissingTools(): string[] {
  const succeeds = (command: string, args: string[]) => spawnSync(command, args, { stdio: 'ignore' }).status === 0
  const missing: string[] = []
  // protoc finds google/protobuf/timestamp.proto in libprotobuf-dev (a Recommends, so not always installed).
  if (!succeeds('protoc', ['-I', protoDir, '-o', '/dev/null', 'stackshift/jobs/v1/run.proto']))
    missing.push('protoc that finds google/protobuf/timestamp.proto (apt-get install protobuf-compiler libprotobuf-dev)')
  if (!succeeds('sh', ['-c', 'command -v grpc_python_plugin'])) missing.push('grpc_python_plugin (apt-get install protobuf-compiler-grpc)')
  if (!succeeds(python, ['-c', 'import grpc, google.protobuf']))
    missing.push(`${python} with grpc and protobuf (apt-get install python3-grpcio python3-protobuf)`)
  return missing
}

const missingTools = findMissingTools()
/**
 * On a developer's machine a missing tool skips the test with a warning. Under
 * CI (CI=true, as CI services set it) it fails the test instead: a CI image
 * that lost a package would otherwise stop testing the protocol from a
 * second language, and nobody would notice.
 */
const isCi = !['', '0', 'false'].includes(process.env.CI ?? '')
if (missingTools.length > 0 && !isCi) {
  console.warn(`python-worker.test.ts is skipped: missing ${missingTools.join('; ')}`)
}

/** worker.py in a child process; collects the lines it prints. */
class PythonWorker {
  readonly lines: string[] = []
  /** Resolves with the exit status (or the signal that ended it). */
  readonly exited: Promise<number | NodeJS.Signals>
  private readonly process: ChildProcess

  constructor(args: string[], env: Record<string, string>) {
    this.process = spawn(python, [join(exampleDir, 'worker.py'), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    this.exited = once(this.process, 'exit').then(([code, signal]) => (code as number | null) ?? (signal as NodeJS.Signals))
    let buffer = ''
    this.process.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      const complete = buffer.split('\n')
      buffer = complete.pop()!
      this.lines.push(...complete)
    })
  }

  /** Lines that start with `word`, split into words after it. */
  linesOf(word: string): string[][] {
    return this.lines.filter((line) => line.startsWith(`${word} `)).map((line) => line.split(' ').slice(1))
  }

  /** Step ids this process executed (not replayed) for a run. */
  executedSteps(runId: string): string[] {
    return this.linesOf('EXECUTED')
      .filter(([id]) => id === runId)
      .map(([, stepId]) => stepId!)
  }

  async waitForLine(pattern: RegExp, timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const line = this.lines.find((l) => pattern.test(l))
      if (line !== undefined) return line
      if (Date.now() > deadline) throw new Error(`worker.py printed no line matching ${pattern}; it printed:\n${this.lines.join('\n')}`)
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }

  async kill(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return
    this.process.kill('SIGKILL')
    await this.exited
  }
}

describe.skipIf(missingTools.length > 0 && !isCi)('a Python worker on the Connect stream', () => {
  const env = useTestEnvironment()
  const workers: PythonWorker[] = []
  let stubsDir = ''

  beforeAll(() => {
    if (missingTools.length > 0) throw new Error(`CI is set and the Python worker test cannot run: missing ${missingTools.join('; ')}`)
    stubsDir = mkdtempSync(join(tmpdir(), 'stackshift-python-stubs-'))
    const generated = spawnSync('sh', [join(exampleDir, 'generate.sh'), stubsDir], { encoding: 'utf8' })
    if (generated.status !== 0) throw new Error(`generate.sh failed:\n${generated.stderr}`)
  })

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((worker) => worker.kill()))
  })

  afterAll(() => {
    if (stubsDir) rmSync(stubsDir, { recursive: true, force: true })
  })

  function startPythonWorker(args: string[]): PythonWorker {
    const worker = new PythonWorker(['--address', env.server.address, ...args], { STACKSHIFT_STUBS_DIR: stubsDir })
    workers.push(worker)
    return worker
  }

  it('executes runs enqueued from TypeScript: both steps stored with their results, the run completed in one attempt', async () => {
    const worker = startPythonWorker(['--queue', 'py-orders', '--max-runs', '3'])
    const workerId = (await worker.waitForLine(/^READY /)).split(' ')[1]
    const orders = env.stackshift.queue('py-orders')
    const enqueued = [
      await orders.enqueue('processOrder', { orderId: 'A-1', amountCents: 100 }),
      await orders.enqueue('processOrder', { orderId: 'A-2', amountCents: 200 }),
    ]
    // The enqueuer's W3C trace context reaches the worker with the task.
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    const { run_id: tracedRunId } = await env.raw.runs('Enqueue', {
      run: { queue: 'py-orders', job: 'processOrder', payload_json: '{"orderId":"A-3","amountCents":300}', trace_context: { traceparent } },
    })
    const runIds = [...enqueued.map((run) => run.id), tracedRunId]

    for (const [index, runId] of runIds.entries()) {
      const run = await env.stackshift.waitForRun<Record<string, unknown>>(runId, { timeoutMs: 60_000 })
      const orderId = `A-${index + 1}`
      expect(run.status).toBe('completed')
      expect(run.attempts).toBe(1)
      expect(run.attemptHistory.map((attempt) => [attempt.attempt, attempt.outcome])).toEqual([[1, 'completed']])
      expect(run.steps.map((step) => [step.id, step.kind, step.status, step.attempt])).toEqual([
        ['reserve-stock', 'run', 'completed', 1],
        ['charge-card', 'run', 'completed', 1],
      ])
      const [reserve, charge] = run.steps.map((step) => step.result as Record<string, unknown>)
      // Vitest types matchers as any; `as unknown` keeps the any out of the expected object.
      expect(reserve).toEqual({ reservationId: expect.stringMatching(new RegExp(`^res-${orderId}-\\d+$`)) as unknown })
      expect(charge).toEqual({
        chargeId: expect.stringMatching(new RegExp(`^ch-${orderId}-\\d+$`)) as unknown,
        amountCents: (index + 1) * 100,
      })
      expect(run.result).toEqual({ orderId, ...reserve, ...charge })
      expect(worker.executedSteps(runId)).toEqual(['reserve-stock', 'charge-card'])
      const { rows } = await env.db.query<{ worker_id: string }>('SELECT worker_id FROM stackshift.runs WHERE id = $1', [runId])
      expect(rows[0]?.worker_id).toBe(workerId)
    }
    const started = worker.linesOf('START').find(([id]) => id === tracedRunId)
    expect(started).toContain(`traceparent=${traceparent}`)
    // It asked for three runs (--max-runs 3), finished them and left cleanly.
    expect(await worker.exited).toBe(0)
  }, 120_000)

  it("a parent starts a child run and waits without its slot; executed again, it reads the child's result from the memo", async () => {
    const worker = startPythonWorker(['--queue', 'py-ship', '--max-runs', '3'])
    await worker.waitForLine(/^READY /)
    const { id: parentId } = await env.stackshift
      .queue('py-ship')
      .enqueue('shipOrder', { orderId: 'C-1', amountCents: 900, queue: 'py-ship' })

    const parent = await env.stackshift.waitForRun<Record<string, unknown>>(parentId, { timeoutMs: 60_000 })
    // Three runs on one slot: the parent until it suspended, the child, the parent again.
    expect(await worker.exited).toBe(0)

    expect(parent.status).toBe('completed')
    expect(parent.attempts).toBe(1)
    const [child] = parent.children
    expect(child).toMatchObject({ stepId: 'process', job: 'processOrder', status: 'completed' })
    const childRun = await env.stackshift.getRun<Record<string, unknown>>(child!.runId)
    expect(childRun).toMatchObject({ parentRunId: parentId, parentStepId: 'process', payload: { orderId: 'C-1', amountCents: 900 } })
    expect(parent.result).toEqual({ orderId: 'C-1', chargeId: childRun.result!.chargeId, label: 'label-C-1' })
    expect(parent.steps.map((step) => [step.id, step.kind, step.status])).toEqual([
      ['process', 'invoke', 'completed'],
      ['print-label', 'run', 'completed'],
    ])
    expect(worker.linesOf('SUSPENDED')).toEqual([[parentId, 'process']])
    expect(worker.linesOf('START').map(([id]) => id)).toEqual([parentId, child!.runId, parentId])
    expect(worker.linesOf('REPLAYED').map((words) => words.slice(0, 2))).toEqual([[parentId, 'process']])
  }, 120_000)

  it('a worker that crashes after the first step: the next one takes the run as attempt 2 when the lease expires, replays the first step from the memo and completes', async () => {
    const crashing = startPythonWorker(['--queue', 'py-crash', '--lease-ms', '2000', '--crash-after-step', 'reserve-stock'])
    await crashing.waitForLine(/^READY /)
    const { id: runId } = await env.stackshift.queue('py-crash').enqueue('processOrder', { orderId: 'B-1', amountCents: 4200 })
    expect(await crashing.exited).toBe(crashExitCode)
    expect(crashing.executedSteps(runId)).toEqual(['reserve-stock'])
    const storedBeforeCrash = JSON.parse(crashing.linesOf('EXECUTED')[0]![2]!) as { reservationId: string }

    // The dead worker's lease runs out (2 s, on the database clock); the reaper
    // counts the attempt as failed and queues the run again.
    const survivor = startPythonWorker(['--queue', 'py-crash', '--max-runs', '1'])
    const run = await env.stackshift.waitForRun<Record<string, unknown>>(runId, { timeoutMs: 60_000 })
    expect(await survivor.exited).toBe(0)

    expect(run.status).toBe('completed')
    expect(run.attempts).toBe(2)
    expect(run.attemptHistory.map((attempt) => [attempt.attempt, attempt.outcome])).toEqual([
      [1, 'lease_expired'],
      [2, 'completed'],
    ])
    // The first step keeps the result attempt 1 stored; only the second ran again.
    expect(run.steps.map((step) => [step.id, step.status, step.attempt])).toEqual([
      ['reserve-stock', 'completed', 1],
      ['charge-card', 'completed', 2],
    ])
    expect(run.steps[0]!.result).toEqual(storedBeforeCrash)
    expect(survivor.linesOf('START')).toEqual([[runId, 'attempt=2', 'memoized=reserve-stock', 'traceparent=-']])
    expect(survivor.linesOf('REPLAYED').map((words) => words.slice(0, 2))).toEqual([[runId, 'reserve-stock']])
    expect(survivor.executedSteps(runId)).toEqual(['charge-card'])
    // The run's result carries the memoized reservation, made by the crashed process.
    expect(run.result).toMatchObject({ orderId: 'B-1', reservationId: storedBeforeCrash.reservationId, amountCents: 4200 })
  }, 120_000)
})
