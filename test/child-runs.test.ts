import { readFile } from 'node:fs/promises'
import { status } from '@grpc/grpc-js'
import { ChildRunFailedError, ChildRunTimeoutError, type InvokeOptions, NonRetriableError, RunCancelledError } from '@stackshift/sdk'
import { expect, it } from 'vitest'
import { useTestEnvironment } from './support/environment.js'
import { ChildScript } from './support/processes.js'
import { rejectionOf } from './support/raw-client.js'
import { waitUntil } from './support/wait-until.js'

const env = useTestEnvironment()

/** How many runs have `parentRunId` as their parent, and how many attempts they started in all. */
async function childrenOf(parentRunId: string): Promise<{ runs: number; attempts: number }> {
  const { rows } = await env.db.query<{ runs: number; attempts: number }>(
    `SELECT count(*)::int AS runs, coalesce(sum(attempt), 0)::int AS attempts FROM stackshift.runs WHERE parent_run_id = $1`,
    [parentRunId],
  )
  return rows[0]!
}

/** Moves the deadlines of a waiting parent's steps `hours` back: that much of its wait passes. */
async function passHours(runId: string, hours: number): Promise<void> {
  await env.db.query('BEGIN')
  await env.db.query(`UPDATE stackshift.steps SET wake_at = wake_at - $2 * interval '1 hour' WHERE run_id = $1 AND status = 'waiting'`, [
    runId,
    hours,
  ])
  await env.db.query(
    `UPDATE stackshift.runs SET available_at = available_at - $2 * interval '1 hour' WHERE id = $1 AND status = 'waiting'`,
    [runId, hours],
  )
  await env.db.query('COMMIT')
}

async function statusOf(runId: string): Promise<string> {
  const { rows } = await env.db.query<{ status: string }>(`SELECT status::text AS status FROM stackshift.runs WHERE id = $1`, [runId])
  return rows[0]!.status
}

it('a parent with 50 children on a worker of concurrency 1 completes: the children start together and the parent resumes once', async () => {
  let parentExecutions = 0
  const childExecutions = new Map<number, number>()
  env.stackshift.job<{ count: number }>('fanOut', async ({ payload, step }) => {
    parentExecutions++
    const squares = await Promise.all(
      Array.from({ length: payload.count }, (_, i) =>
        step.invoke<number>(`item:${i}`, { job: 'square', queue: 'fan', payload: { i }, timeout: '1h' }),
      ),
    )
    return squares.reduce((sum, value) => sum + value, 0)
  })
  env.stackshift.job<{ i: number }>('square', ({ payload }) => {
    childExecutions.set(payload.i, (childExecutions.get(payload.i) ?? 0) + 1)
    return payload.i * payload.i
  })
  await env.startWorker({ queues: ['fan'], jobs: ['fanOut', 'square'], concurrency: 1 })

  const { id } = await env.stackshift.queue('fan').enqueue('fanOut', { count: 50 })
  const done = await env.stackshift.waitForRun(id, { timeoutMs: 50_000 })

  expect(done.status).toBe('completed')
  expect(done.result).toBe(Array.from({ length: 50 }, (_, i) => i * i).reduce((sum, value) => sum + value, 0))
  // One execution up to the invokes, one after the last child finished; the
  // suspension did not count as an attempt.
  expect(parentExecutions).toBe(2)
  expect(done.attempts).toBe(1)
  // Each child started once, all in the parent's one suspension (one transaction: one now()).
  expect([...childExecutions.values()]).toEqual(Array.from({ length: 50 }, () => 1))
  expect(await childrenOf(id)).toEqual({ runs: 50, attempts: 50 })
  const { rows } = await env.db.query<{ instants: number }>(
    `SELECT count(DISTINCT created_at)::int AS instants FROM stackshift.runs WHERE parent_run_id = $1`,
    [id],
  )
  expect(rows[0]!.instants).toBe(1)
  expect(done.steps).toHaveLength(50)
  expect(done.steps.every((step) => step.kind === 'invoke' && step.status === 'completed')).toBe(true)
  expect(done.children.map((child) => [child.stepId, child.job, child.status])).toEqual(
    Array.from({ length: 50 }, (_, i) => [`item:${i}`, 'square', 'completed']),
  )
})

it('six parents fanning out 100 children each at once on one busy worker all complete, and each child runs once', async () => {
  const childExecutions = new Map<string, number>()
  env.stackshift.job<{ count: number }>('wideParent', async ({ payload, step }) => {
    const values = await Promise.all(
      Array.from({ length: payload.count }, (_, i) =>
        step.invoke<number>(`part:${i}`, { job: 'part', queue: 'wide', payload: i, timeout: '1h' }),
      ),
    )
    return values.reduce((sum, value) => sum + value, 0)
  })
  env.stackshift.job<number>('part', async ({ payload, run }) => {
    childExecutions.set(run.id, (childExecutions.get(run.id) ?? 0) + 1)
    await new Promise((resolve) => setImmediate(resolve))
    return payload
  })
  await env.startWorker({ queues: ['wide'], jobs: ['wideParent', 'part'], concurrency: 100 })

  const parents = await env.stackshift
    .queue('wide')
    .enqueueMany(Array.from({ length: 6 }, () => ({ job: 'wideParent', payload: { count: 100 } })))
  const done = await Promise.all(parents.map((parent) => env.stackshift.waitForRun(parent.id, { timeoutMs: 50_000 })))

  expect(done.map((run) => [run.status, run.result])).toEqual(parents.map(() => ['completed', 4950]))
  expect(childExecutions.size).toBe(600)
  expect([...childExecutions.values()].every((count) => count === 1)).toBe(true)
  for (const parent of parents) expect(await childrenOf(parent.id)).toEqual({ runs: 100, attempts: 100 })
})

it("a child's result comes back to the parent, and getRun shows the parent and its children", async () => {
  env.stackshift.job<{ url: string }>('publish', async ({ payload, step }) => {
    const thumbnail = await step.invoke<{ url: string; width: number }>('resize', {
      job: 'resizeImage',
      queue: 'images',
      payload: { url: payload.url, width: 200 },
      timeout: '10m',
      maxAttempts: 2,
      priority: 5,
    })
    return { published: thumbnail.url, width: thumbnail.width }
  })
  env.stackshift.job<{ url: string; width: number }>('resizeImage', ({ payload }) => ({
    url: `${payload.url}?w=${payload.width}`,
    width: payload.width,
  }))
  await env.startWorker({ queues: ['posts', 'images'], jobs: ['publish', 'resizeImage'] })

  const { id } = await env.stackshift.queue('posts').enqueue('publish', { url: 'https://img.test/cat.png' })
  const done = await env.stackshift.waitForRun(id, { timeoutMs: 20_000 })

  expect(done).toMatchObject({ status: 'completed', result: { published: 'https://img.test/cat.png?w=200', width: 200 } })
  expect(done.children).toHaveLength(1)
  const [child] = done.children
  expect(child).toMatchObject({ stepId: 'resize', queue: 'images', job: 'resizeImage', status: 'completed' })
  const resize = done.steps.find((step) => step.id === 'resize')!
  expect(resize).toMatchObject({
    kind: 'invoke',
    status: 'completed',
    result: { childRunId: child!.runId, status: 'completed', result: { url: 'https://img.test/cat.png?w=200', width: 200 } },
  })

  const childRun = await env.stackshift.getRun(child!.runId)
  expect(childRun).toMatchObject({
    parentRunId: id,
    parentStepId: 'resize',
    queue: 'images',
    maxAttempts: 2,
    priority: 5,
    payload: { url: 'https://img.test/cat.png', width: 200 },
    children: [],
  })
  expect(done.parentRunId).toBeUndefined()
  const page = await env.stackshift.listRuns({ parentRunId: id })
  expect(page.runs.map((run) => run.id)).toEqual([child!.runId])
})

it('a failed child throws ChildRunFailedError with its error in the parent; a parent that lets it escape fails without retries', async () => {
  let catchingExecutions = 0
  env.stackshift.job('catchingParent', async ({ step }) => {
    catchingExecutions++
    try {
      await step.invoke('convert', { job: 'brokenConverter', queue: 'failing', timeout: '1h' })
      return 'unreachable'
    } catch (error) {
      if (!(error instanceof ChildRunFailedError)) throw error
      return { name: error.name, status: error.status, childRunId: error.childRunId, childError: error.childError }
    }
  })
  env.stackshift.job('escapingParent', async ({ step }) => {
    await step.invoke('convert', { job: 'brokenConverter', queue: 'failing', timeout: '1h' })
  })
  env.stackshift.job('brokenConverter', () => {
    throw new NonRetriableError('unsupported format: tiff')
  })
  await env.startWorker({ queues: ['failing'], jobs: ['catchingParent', 'escapingParent', 'brokenConverter'] })

  const catching = await env.stackshift.queue('failing').enqueue('catchingParent', {})
  const escaping = await env.stackshift.queue('failing').enqueue('escapingParent', {}, { maxAttempts: 5 })
  const caught = await env.stackshift.waitForRun(catching.id, { timeoutMs: 20_000 })
  const escaped = await env.stackshift.waitForRun(escaping.id, { timeoutMs: 20_000 })

  const [child] = caught.children
  expect(caught.result).toEqual({
    name: 'ChildRunFailedError',
    status: 'failed',
    childRunId: child!.runId,
    childError: { name: 'NonRetriableError', message: 'unsupported format: tiff' },
  })
  expect(child!.status).toBe('failed')
  expect(catchingExecutions).toBe(2)
  expect(escaped).toMatchObject({ status: 'failed', attempts: 1, error: { name: 'ChildRunFailedError' } })
  expect(escaped.error!.message).toContain('unsupported format: tiff')
})

it('a timeout throws ChildRunTimeoutError and cancels the child; a later timeout keeps its child, which starts once', async () => {
  let executions = 0
  env.stackshift.job('impatientParent', async ({ step }) => {
    executions++
    const [quick, slow] = await Promise.allSettled([
      step.invoke('quick', { job: 'neverClaimed', queue: 'nobody', timeout: '1h' }),
      step.invoke<string>('slow', { job: 'lateChild', queue: 'later', timeout: '3h' }),
    ])
    const reason = quick.status === 'rejected' ? (quick.reason as ChildRunFailedError) : undefined
    return {
      quick: reason && { isTimeout: reason instanceof ChildRunTimeoutError, status: reason.status, childError: reason.childError.name },
      slow: slow.status === 'fulfilled' ? slow.value : String(slow.reason),
    }
  })
  env.stackshift.job('lateChild', () => 'late but here')
  await env.startWorker({ queues: ['impatient'], jobs: ['impatientParent'] })

  const { id } = await env.stackshift.queue('impatient').enqueue('impatientParent', {})
  const waiting = await waitUntil(
    () => env.stackshift.getRun(id),
    (run) => run.status === 'waiting',
  )
  const quickChild = waiting.children.find((child) => child.stepId === 'quick')!
  const slowChild = waiting.children.find((child) => child.stepId === 'slow')!
  const quickStep = waiting.steps.find((step) => step.id === 'quick')!
  // An hour after the parent reached it (a minute's slack for a slow machine).
  expect(quickStep.wakeAt!.getTime() - quickStep.startedAt!.getTime()).toBeGreaterThan(3_540_000)

  // An hour passes: the quick child's deadline, not the slow one's.
  await passHours(id, 1)
  await waitUntil(
    () => statusOf(quickChild.runId),
    (state) => state === 'cancelled',
  )
  // The parent resumed, replayed the timeout, sent the slow invoke again and waits on for it.
  await waitUntil(
    () => env.stackshift.getRun(id),
    (run) => run.status === 'waiting' && executions === 2,
  )
  expect(await statusOf(slowChild.runId)).toBe('queued')

  await env.startWorker({ queues: ['later'], jobs: ['lateChild'] })
  const done = await env.stackshift.waitForRun(id, { timeoutMs: 20_000 })

  expect(done.result).toEqual({
    quick: { isTimeout: true, status: 'timed_out', childError: 'ChildRunTimeoutError' },
    slow: 'late but here',
  })
  expect(executions).toBe(3)
  expect(await childrenOf(id)).toEqual({ runs: 2, attempts: 1 })
  const cancelledChild = await env.stackshift.getRun(quickChild.runId)
  expect(cancelledChild.error!.message).toContain('timed out')
})

it('cancelling a parent cancels its children and grandchildren, and tells a running child its run was cancelled', async () => {
  let blockerSignalReason: unknown
  let isBlockerStarted = false
  env.stackshift.job('treeRoot', async ({ step }) => {
    await Promise.all([
      step.invoke('middle', { job: 'treeMiddle', queue: 'tree', timeout: '1h' }),
      step.invoke('blocker', { job: 'treeBlocker', queue: 'tree', timeout: '1h' }),
    ])
  })
  env.stackshift.job('treeMiddle', async ({ step }) => {
    await step.invoke('leaf', { job: 'treeLeaf', queue: 'nobody', timeout: '1h' })
  })
  env.stackshift.job('treeBlocker', async ({ signal }) => {
    isBlockerStarted = true
    await new Promise((resolve) => signal.addEventListener('abort', resolve))
    blockerSignalReason = signal.reason
  })
  await env.startWorker({ queues: ['tree'], jobs: ['treeRoot', 'treeMiddle', 'treeBlocker'], concurrency: 5 })

  const { id } = await env.stackshift.queue('tree').enqueue('treeRoot', {})
  const root = await waitUntil(
    () => env.stackshift.getRun(id),
    (run) => run.children.length === 2 && run.children.every((child) => child.status === 'waiting' || child.status === 'running'),
  )
  const middle = root.children.find((child) => child.stepId === 'middle')!
  const blocker = root.children.find((child) => child.stepId === 'blocker')!
  const middleRun = await waitUntil(
    () => env.stackshift.getRun(middle.runId),
    (run) => run.status === 'waiting' && run.children.length === 1 && isBlockerStarted,
  )
  const leaf = middleRun.children[0]!

  await env.stackshift.cancelRun(id, { reason: 'order withdrawn' })

  expect(await statusOf(id)).toBe('cancelled')
  expect(await statusOf(middle.runId)).toBe('cancelled')
  expect(await statusOf(leaf.runId)).toBe('cancelled')
  expect(await statusOf(blocker.runId)).toBe('cancelled')
  const cancelledLeaf = await env.stackshift.getRun(leaf.runId)
  expect(cancelledLeaf.error).toMatchObject({ name: 'CancelledError', message: `parent run ${middle.runId} was cancelled` })
  await waitUntil(
    () => blockerSignalReason,
    (reason) => reason !== undefined,
  )
  expect(blockerSignalReason).toBeInstanceOf(RunCancelledError)
})

it('a bulk cancel cancels the children of the runs it selects', async () => {
  env.stackshift.job('bulkParent', async ({ step }) => {
    await step.invoke('only', { job: 'bulkChild', queue: 'nobody', timeout: '1h' })
  })
  await env.startWorker({ queues: ['bulk-parents'], jobs: ['bulkParent'] })
  const parents = await env.stackshift.queue('bulk-parents').enqueueMany([
    { job: 'bulkParent', payload: {} },
    { job: 'bulkParent', payload: {} },
  ])
  const children = await Promise.all(
    parents.map(async (parent) => {
      const waiting = await waitUntil(
        () => env.stackshift.getRun(parent.id),
        (run) => run.status === 'waiting',
      )
      return waiting.children[0]!.runId
    }),
  )

  const started = await env.stackshift.startBulkAction({ action: 'cancel', selection: { queue: 'bulk-parents' } })
  const done = await waitUntil(
    () => env.stackshift.getBulkAction(started.action!.id),
    (action) => action.status === 'completed',
  )

  expect(done).toMatchObject({ handled: 2, skipped: 0 })
  for (const id of [...parents.map((parent) => parent.id), ...children]) expect(await statusOf(id)).toBe('cancelled')
})

it("the parent's worker killed with SIGKILL while its children run does not start them twice", async () => {
  let releaseChildren: () => void = () => {}
  const childrenReleased = new Promise<void>((resolve) => (releaseChildren = resolve))
  const childExecutions = new Map<number, number>()
  env.stackshift.job<{ i: number }>('slowKid', async ({ payload }) => {
    childExecutions.set(payload.i, (childExecutions.get(payload.i) ?? 0) + 1)
    await childrenReleased
    return payload.i + 1
  })
  await env.startWorker({ queues: ['kids'], jobs: ['slowKid'], concurrency: 10 })

  const crashing = new ChildScript('test/fixtures/invoking-worker.ts', { STACKSHIFT_ADDRESS: env.server.address })
  try {
    await crashing.waitForLine(/^READY$/)
    const { id } = await env.stackshift.queue('parents').enqueue('crashingParent', { count: 10 })
    await waitUntil(
      () => childExecutions.size,
      (started) => started === 10,
    )
    await crashing.kill('SIGKILL')
    releaseChildren()

    env.stackshift.job<{ count: number }>('crashingParent', async ({ payload, step }) => {
      const results = await Promise.all(
        Array.from({ length: payload.count }, (_, i) =>
          step.invoke<number>(`kid:${i}`, { job: 'slowKid', queue: 'kids', payload: { i }, timeout: '1h' }),
        ),
      )
      return results.reduce((sum, value) => sum + value, 0)
    })
    await env.startWorker({ queues: ['parents'], jobs: ['crashingParent'] })
    const done = await env.stackshift.waitForRun(id, { timeoutMs: 30_000 })

    expect(done).toMatchObject({ status: 'completed', result: 55 })
    expect(crashing.lines.filter((line) => line.startsWith(`INVOKING ${id}`))).toHaveLength(1)
    expect(await childrenOf(id)).toEqual({ runs: 10, attempts: 10 })
    expect([...childExecutions.values()]).toEqual(Array.from({ length: 10 }, () => 1))
  } finally {
    await crashing.kill('SIGKILL')
  }
})

it('step.invoke without a job, or with a bad timeout, throws in the handler and sends nothing', async () => {
  env.stackshift.job('sloppyParent', async ({ step }) => {
    const attempts: Array<[string, InvokeOptions]> = [
      ['no-job', { job: '', timeout: '1h' }],
      ['no-timeout', { job: 'x' } as InvokeOptions],
      ['bad-timeout', { job: 'x', timeout: 'soon' }],
      ['zero-timeout', { job: 'x', timeout: 0 }],
    ]
    const messages: string[] = []
    for (const [id, options] of attempts) {
      try {
        await step.invoke(id, options)
      } catch (error) {
        messages.push(`${(error as Error).name}: ${(error as Error).message}`)
      }
    }
    return messages
  })
  await env.startWorker({ queues: ['sloppy'], jobs: ['sloppyParent'] })
  const { id } = await env.stackshift.queue('sloppy').enqueue('sloppyParent', {})
  const done = await env.stackshift.waitForRun(id, { timeoutMs: 20_000 })

  expect(done.status).toBe('completed')
  const messages = done.result as string[]
  expect(messages).toHaveLength(4)
  expect(messages[0]).toBe('InvalidArgumentError: step.invoke("no-job") needs options.job, the child\'s job')
  expect(messages[1]).toBe('InvalidArgumentError: step.invoke("no-timeout") needs options.timeout, such as "10m"')
  expect(messages[2]).toMatch(/^InvalidArgumentError: step\.invoke\("bad-timeout"\) options\.timeout /)
  expect(messages[3]).toBe('InvalidArgumentError: step.invoke("zero-timeout") options.timeout must be at least 1 ms')
  expect(await childrenOf(id)).toEqual({ runs: 0, attempts: 0 })
  expect(done.steps).toHaveLength(0)
})

it("over the raw protocol: the child's outcome reaches the parent's memo, and an invoke sent again starts nothing and queues the parent at once", async () => {
  await env.raw.runs('Enqueue', { run: { queue: 'raw-family', job: 'rawFamilyParent', payload_json: '{}' } })
  const claimed = await env.raw.workers('ClaimTask', { queues: ['raw-family'], jobs: ['rawFamilyParent'], max_tasks: 1 })
  const parent = claimed.tasks[0]!
  const invoke = {
    run_id: parent.run_id,
    lease_token: parent.lease_token,
    step_id: 'convert',
    invoke: {
      children: [{ step_id: 'convert', queue: 'raw-family', job: 'rawFamilyChild', payload_json: '{"n":20}', timeout_ms: 3_600_000 }],
    },
  }
  expect(await env.raw.workers('SuspendRun', invoke)).toMatchObject({ suspended: true })
  expect(await statusOf(parent.run_id)).toBe('waiting')

  const { tasks: childTasks } = await env.raw.workers('ClaimTask', { queues: ['raw-family'], jobs: ['rawFamilyChild'], max_tasks: 1 })
  const child = childTasks[0]!
  expect(JSON.parse(child.payload_json)).toEqual({ n: 20 })
  await env.raw.workers('CompleteRun', { run_id: child.run_id, lease_token: child.lease_token, result_json: '{"n":21}' })
  expect(await statusOf(parent.run_id)).toBe('queued')

  const { tasks: resumed } = await env.raw.workers('ClaimTask', { queues: ['raw-family'], jobs: ['rawFamilyParent'], max_tasks: 1 })
  expect(resumed[0]!.attempt).toBe(1)
  expect(resumed[0]!.steps.map((step) => [step.step_id, JSON.parse(step.result_json!) as unknown])).toEqual([
    ['convert', { childRunId: child.run_id, status: 'completed', result: { n: 21 } }],
  ])
  // A worker that ignored the memo and sent the invoke again: no second child, and the
  // parent is queued again at once, to replay the outcome.
  const again = await env.raw.workers('SuspendRun', { ...invoke, lease_token: resumed[0]!.lease_token })
  expect(again).toMatchObject({ suspended: true })
  expect(await statusOf(parent.run_id)).toBe('queued')
  expect(await childrenOf(parent.run_id)).toEqual({ runs: 1, attempts: 1 })
})

it('an invoke naming a bad child is refused with the field, and starts nothing', async () => {
  await env.raw.runs('Enqueue', { run: { queue: 'raw-parents', job: 'rawParent', payload_json: '{}' } })
  const { tasks } = await env.raw.workers('ClaimTask', { queues: ['raw-parents'], jobs: ['rawParent'], max_tasks: 1 })
  const lease = { run_id: tasks[0]!.run_id, lease_token: tasks[0]!.lease_token }
  const child = { step_id: 'a', queue: 'q', job: 'j', payload_json: '{}', timeout_ms: 60_000 }
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ step_id: 'a', invoke: { children: [{ ...child, job: '' }] } }, 'invoke.children[0].job: must not be empty'],
    [{ step_id: 'a', invoke: { children: [{ ...child, timeout_ms: 0 }] } }, 'invoke.children[0].timeout_ms: must be at least 1'],
    [{ step_id: 'a', invoke: { children: [{ ...child, payload_json: '{' }] } }, 'invoke.children[0].payload_json: is not valid JSON'],
    [{ step_id: 'a', invoke: { children: [child, child] } }, 'invoke.children[1].step_id: repeats "a"; step ids must differ'],
    [{ step_id: 'b', invoke: { children: [child] } }, 'step_id: must be the first child\'s step id ("a") for invoke'],
    [{ step_id: 'a', invoke: { children: [] } }, 'invoke.children: must hold at least one child run'],
  ]
  for (const [request, message] of cases) {
    const rejection = await rejectionOf(env.raw.workers('SuspendRun', { ...lease, ...request }))
    expect(rejection.code).toBe(status.INVALID_ARGUMENT)
    expect(rejection.details.startsWith(message), `${rejection.details} starts with ${message}`).toBe(true)
  }
  const tooMany = Array.from({ length: 1001 }, (_, i) => ({ ...child, step_id: `s${i}` }))
  const refused = await rejectionOf(env.raw.workers('SuspendRun', { ...lease, step_id: 's0', invoke: { children: tooMany } }))
  expect(refused).toEqual({ code: status.RESOURCE_EXHAUSTED, details: 'invoke.children: holds 1001 child runs; the limit is 1000' })
  expect(await childrenOf(lease.run_id)).toEqual({ runs: 0, attempts: 0 })
  expect(await statusOf(lease.run_id)).toBe('running')
  const { rows } = await env.db.query(`SELECT 1 FROM stackshift.steps WHERE run_id = $1`, [lease.run_id])
  expect(rows).toHaveLength(0)
})

it("the README's child runs example is examples/child-runs.ts, and it runs as shown", async () => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8')
  const example = await readFile(new URL('../examples/child-runs.ts', import.meta.url), 'utf8')
  const section = readme.slice(readme.indexOf('### Child runs'))
  expect(/```ts\n([\s\S]*?)```/.exec(section)?.[1]).toBe(example)

  const script = new ChildScript('examples/child-runs.ts', { STACKSHIFT_ADDRESS: env.server.address })
  try {
    expect(await script.waitForLine(/^no cover: /)).toBe('no cover: failed bad width -1')
    expect(await script.waitForLine(/^completed /)).toBe("completed [ 'a.png?w=200', 'b.png?w=200', 'c.png?w=200' ] 4")
    await new Promise((resolve) => script.process.once('exit', resolve))
    expect(script.process.exitCode).toBe(0)
  } finally {
    await script.kill()
  }
})
