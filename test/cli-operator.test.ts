import { type Run, StackShift, type Worker } from '@stackshift/sdk'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { type CliResult, runCli } from './support/cli.js'
import { createTestDatabase } from './support/database.js'
import { type TestServer, startTestServer } from './support/server.js'
import { waitUntil } from './support/wait-until.js'

/*
 * The operator's commands (`runs rerun|replay|bulk`, `events list`,
 * `queues`, `workers`), run as a user runs them, against runs a worker in
 * this process executes.
 */

const adminKey = 'test-admin-key-0123456789abcdefghijklmnop'
let server: TestServer
let client: StackShift
let worker: Worker
let readerKey: string
/** How many times each step of the pipeline job ran, by step id. */
const executions = new Map<string, number>()

beforeAll(async () => {
  server = await startTestServer(await createTestDatabase(), { auth: 'required', adminKey })
  client = new StackShift({ address: server.address, apiKey: adminKey })
  readerKey = (await client.admin.createApiKey({ scopes: ['read'], name: 'dashboard' })).secret
  client.job<{ n: number }>('pipeline', async ({ payload, step }) => {
    const count = (id: string) => executions.set(id, (executions.get(id) ?? 0) + 1)
    const fetched = await step.run('fetch', () => (count('fetch'), payload.n * 10))
    const transformed = await step.run('transform', () => (count('transform'), fetched + 1))
    await step.run('load', () => count('load').size)
    return { transformed }
  })
  client.job<{ invoice: string }>('awaitPayment', async ({ payload, step }) => {
    const paid = await step.waitForEvent('paid', { event: 'invoice.paid', match: { invoice: payload.invoice }, timeout: '1h' })
    return paid?.id
  })
  worker = client.worker({ queues: ['pipeline'], workerId: 'cli-test-worker', concurrency: 4, prefetch: 2 })
  await worker.start()
})

afterAll(async () => {
  await worker.stop()
  client.close()
  await server.stop()
})

function stackshift(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, { STACKSHIFT_ADDRESS: server.address, STACKSHIFT_API_KEY: adminKey, ...env })
}

/** The --json document of a command that must succeed. */
async function json<T>(args: string[]): Promise<T> {
  const result = await stackshift([...args, '--json'])
  expect(result, `stackshift ${args.join(' ')}`).toMatchObject({ code: 0, stderr: '' })
  return JSON.parse(result.stdout) as T
}

it('runs replay --from-step forks a run that keeps the earlier steps memoized; runs rerun starts over with a new payload', async () => {
  const source = await client.queue('pipeline').enqueue('pipeline', { n: 1 })
  expect(await client.waitForRun(source.id)).toMatchObject({ status: 'completed', result: { transformed: 11 } })
  expect(Object.fromEntries(executions)).toEqual({ fetch: 1, transform: 1, load: 1 })

  const [replay, rerunText] = await Promise.all([
    json<Run>(['runs', 'replay', source.id, '--from-step', 'transform']),
    stackshift(['runs', 'rerun', source.id, '--payload', '{"n":2}']),
  ])
  expect(replay).toMatchObject({
    job: 'pipeline',
    queue: 'pipeline',
    payload: { n: 1 },
    forkedFrom: { runId: source.id, stepId: 'transform' },
  })
  expect(rerunText.code).toBe(0)
  const rerunId = new RegExp(`^rerun of ${source.id}: run (\\S+) \\(\\w+\\)\\n$`).exec(rerunText.stdout)?.[1]
  expect(rerunId).toBeDefined()

  const [replayed, rerun] = await Promise.all([client.waitForRun(replay.id), client.waitForRun(rerunId!)])
  expect(replayed).toMatchObject({ status: 'completed', result: { transformed: 11 } })
  expect(rerun).toMatchObject({ status: 'completed', payload: { n: 2 }, result: { transformed: 21 }, rerunOf: source.id })
  // The replay ran transform and load again, not fetch; the rerun ran all three.
  expect(Object.fromEntries(executions)).toEqual({ fetch: 2, transform: 3, load: 3 })

  type Start = { matched: number; skipped: number; action: null }
  const [shown, fromSource, bulkReplay, bulkReplayMissingStep] = await Promise.all([
    stackshift(['runs', 'show', replay.id]),
    json<{ runs: Run[] }>(['runs', 'list', '--source-run', source.id]),
    json<Start>(['runs', 'bulk', 'replay', '--queue', 'pipeline', '--from-step', 'fetch', '--dry-run']),
    json<Start>(['runs', 'bulk', 'replay', '--queue', 'pipeline', '--from-step', 'nope', '--dry-run']),
  ])
  expect(shown.stdout).toMatch(new RegExp(`^origin +replay of ${source.id} from step transform$`, 'm'))
  // fetch is the replay's memo, copied; transform ran again in the replay's attempt.
  expect(shown.stdout).toMatch(/^step fetch +copied: → 10$/m)
  expect(shown.stdout).toMatch(/^step transform +\+\S+ +\S+ +[ █]+ +→ 11$/m)
  expect(fromSource.runs.map((run) => run.id).sort()).toEqual([replay.id, rerunId].sort())
  // Every run of the queue has a step "fetch" (the replay's copied one too); none has "nope".
  expect(bulkReplay).toMatchObject({ matched: 3, skipped: 0, action: null })
  expect(bulkReplayMissingStep).toMatchObject({ matched: 3, skipped: 3, action: null })

  const unknownStep = await stackshift(['runs', 'replay', source.id, '--from-step', 'nope'])
  expect(unknownStep.code).not.toBe(0)
  expect(unknownStep.stderr).toMatch(/^stackshift: (NOT_FOUND|INVALID_ARGUMENT): /)
})

it('runs bulk cancel --dry-run counts and changes nothing; then cancels every selected run, --wait reporting progress', async () => {
  const queue = client.queue('bulk-idle')
  const runs = await queue.enqueueMany(Array.from({ length: 4 }, (_, n) => ({ job: 'idle', payload: { n } })))
  await client.cancelRun(runs[0]!.id)

  type Start = {
    dryRun: boolean
    matched: number
    skipped: number
    action: { id: string; status: string; handled: number; skipped: number } | null
  }
  const [dryRun, dryRunText, unfiltered] = await Promise.all([
    json<Start>(['runs', 'bulk', 'cancel', '--queue', 'bulk-idle', '--dry-run']),
    stackshift(['runs', 'bulk', 'cancel', '--queue', 'bulk-idle', '--dry-run']),
    stackshift(['runs', 'bulk', 'cancel', '--dry-run']),
  ])
  // The cancelled run is selected, and skipped.
  expect(dryRun).toEqual({ dryRun: true, action: null, matched: 4, skipped: 1 })
  expect(dryRunText.stdout).toBe('dry run: of 4 selected run(s), 3 to cancel and 1 to skip; nothing changed\n')
  expect(unfiltered.code).toBe(2)
  expect(unfiltered.stderr).toContain('runs bulk cancel needs a filter')
  const refused = await stackshift(['runs', 'bulk', 'cancel', '--queue', 'bulk-idle'], { STACKSHIFT_API_KEY: readerKey })
  expect(refused).toMatchObject({ code: 1, stdout: '' })
  expect(refused.stderr).toMatch(/^stackshift: PERMISSION_DENIED: /)
  const listed = await client.listRuns({ queue: 'bulk-idle' })
  expect(listed.runs.filter((run) => run.status === 'queued')).toHaveLength(3)
  expect(await client.listBulkActions()).toEqual([])

  const done = await json<Start>(['runs', 'bulk', 'cancel', '--queue', 'bulk-idle', '--wait'])
  expect(done).toMatchObject({ dryRun: false, matched: 4, skipped: 1, action: { status: 'completed', handled: 3, skipped: 1 } })
  const after = await client.listRuns({ queue: 'bulk-idle' })
  expect(after.runs.map((run) => run.status)).toEqual(['cancelled', 'cancelled', 'cancelled', 'cancelled'])

  const [shown, list] = await Promise.all([
    stackshift(['runs', 'bulk', 'show', done.action!.id]),
    json<{ actions: Array<{ id: string; action: string }> }>(['runs', 'bulk', 'list']),
  ])
  expect(shown.stdout).toMatch(/^selection +--queue bulk-idle$/m)
  expect(shown.stdout).toMatch(/^status +completed$/m)
  expect(shown.stdout).toMatch(/^handled +3$/m)
  expect(list.actions).toContainEqual(expect.objectContaining({ id: done.action!.id, action: 'cancel' }))
  expect((await stackshift(['runs', 'bulk', 'show', '00000000-0000-7000-8000-000000000000'])).code).toBe(3)

  // For people: progress on stderr, the outcome on stdout.
  const rerun = await stackshift(['runs', 'bulk', 'rerun', '--queue', 'bulk-idle', '--status', 'cancelled', '--wait'])
  expect(rerun.code).toBe(0)
  expect(rerun.stdout).toMatch(/^rerun \S+ completed in \S+: 4 handled, 0 skipped\n$/)
  expect(rerun.stderr).toMatch(/^rerun \S+ started: of 4 selected run\(s\), 4 to rerun and 0 to skip\n/)
  expect((await client.listRuns({ queue: 'bulk-idle', status: 'queued' })).runs).toHaveLength(4)
})

it('events list shows events newest first with the runs each resumed', async () => {
  const waiting = await client.queue('pipeline').enqueue('awaitPayment', { invoice: 'i_1' })
  await waitUntil(
    () => client.getRun(waiting.id),
    (run) => run.status === 'waiting',
  )
  await client.sendEvent('invoice.paid', { invoice: 'i_1' }, { id: 'paid-1' })
  await client.sendEvent('invoice.paid', { invoice: 'i_2' }, { id: 'paid-2' })
  await client.sendEvent('other', {}, { id: 'other-1' })
  const [listed, table] = await Promise.all([
    json<{ events: Array<{ id: string; data: unknown; deliveries: unknown[] }>; nextCursor: string | null }>([
      'events',
      'list',
      '--name',
      'invoice.paid',
    ]),
    stackshift(['events', 'list', '--limit', '1']),
  ])
  expect(listed.events.map((event) => [event.id, event.data, event.deliveries])).toEqual([
    ['paid-2', { invoice: 'i_2' }, []],
    ['paid-1', { invoice: 'i_1' }, [{ runId: waiting.id, stepId: 'paid' }]],
  ])
  expect(await client.waitForRun(waiting.id)).toMatchObject({ status: 'completed', result: 'paid-1' })
  expect(listed.nextCursor).toBeNull()
  expect(table.stdout).toMatch(/^ID +NAME +RECEIVED +RESUMED +DATA\nother-1 +other +\S+Z +0 +\{\}\n$/)
  expect(table.stderr).toMatch(/^more: add --cursor /)
})

it('queues shows depth by state and the last hour; workers shows the connected worker', async () => {
  const depth = client.queue('depth')
  await Promise.all([depth.enqueue('idle', {}), depth.enqueue('idle', {}), depth.enqueue('idle', {}, { delay: '1h' })])
  const done = await client.queue('pipeline').enqueue('pipeline', { n: 3 })
  await client.waitForRun(done.id)

  // Servers write their workers down every few seconds: the CLI is asked once the worker is there.
  await waitUntil(
    () => client.listWorkers(),
    (connected) => connected.some((entry) => entry.workerId === 'cli-test-worker'),
  )
  type Stats = { queues: Array<{ queue: string; ready: number; delayed: number; lastHour: { started: number; completed: number } }> }
  const [all, text, workers, workersText] = await Promise.all([
    json<Stats>(['queues']),
    stackshift(['queues', '--queue', 'depth']),
    json<{ workers: Array<{ workerId: string; queues: string[]; freeSlots: number }> }>(['workers']),
    stackshift(['workers']),
  ])
  expect(all.queues.find((queue) => queue.queue === 'depth')).toMatchObject({
    ready: 2,
    delayed: 1,
    lastHour: { started: 0, completed: 0 },
  })
  const pipeline = all.queues.find((queue) => queue.queue === 'pipeline')!
  expect(pipeline.lastHour.completed).toBeGreaterThanOrEqual(1)
  expect(pipeline.lastHour.started).toBeGreaterThanOrEqual(1)
  expect(text.stdout).toMatch(
    /^QUEUE +READY +DELAYED +WAITING +RUNNING +STARTED\/1H +COMPLETED\/1H +FAILED\/1H +START LATENCY\ndepth +2 +1 +0 +0 +0 +0 +0 +-\n$/,
  )

  // Free slots are as the server last wrote them down (every few seconds), so only their range is certain.
  const listed = workers.workers.find((entry) => entry.workerId === 'cli-test-worker')
  expect(listed?.queues).toEqual(['pipeline'])
  expect(listed?.freeSlots).toBeGreaterThanOrEqual(0)
  expect(listed?.freeSlots).toBeLessThanOrEqual(6)
  expect(workersText.stdout).toMatch(/^cli-test-worker +pipeline +pipeline,awaitPayment +\d +stackshift-ts\/\S+ +\S+Z +\S+Z +\w+$/m)
})
