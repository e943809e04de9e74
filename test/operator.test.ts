import { credentials } from '@grpc/grpc-js'
import { OperatorServiceClient, StartBulkActionRequest } from '@stackshift/proto/operator-service'
import { InvalidArgumentError, NotFoundError, StackShift } from '@stackshift/sdk'
import { afterAll, describe, expect, it } from 'vitest'
import { useTestEnvironment } from './support/environment.js'
import { startTestServer } from './support/server.js'
import { waitUntil } from './support/wait-until.js'

const env = useTestEnvironment()

/** A generated client, for requests the SDK never sends. */
let operatorClient: OperatorServiceClient | undefined
function operator(): OperatorServiceClient {
  operatorClient ??= new OperatorServiceClient(env.server.address, credentials.createInsecure())
  return operatorClient
}
afterAll(() => operatorClient?.close())

async function count(sqlText: string, values: unknown[] = []): Promise<number> {
  const { rows } = await env.db.query<{ n: number }>(sqlText, values)
  return rows[0]!.n
}

describe('rerunRun', () => {
  it('runs the job again with the same or an edited payload, and leaves the source as it was', async () => {
    const seen: unknown[] = []
    env.stackshift.job<{ n: number }>('echo', ({ payload }) => {
      seen.push(payload)
      return { doubled: payload.n * 2 }
    })
    await env.startWorker({ queues: ['rerun'], jobs: ['echo'] })
    const source = await env.stackshift.queue('rerun').enqueue('echo', { n: 1 })
    const finished = await env.stackshift.waitForRun(source.id)

    const same = await env.stackshift.rerunRun(source.id)
    const edited = await env.stackshift.rerunRun(source.id, { payload: { n: 21 } })
    expect(same).toMatchObject({ queue: 'rerun', job: 'echo', payload: { n: 1 }, rerunOf: source.id, forkedFrom: undefined })
    expect(edited).toMatchObject({ payload: { n: 21 }, rerunOf: source.id })
    expect((await env.stackshift.waitForRun(edited.id)).result).toEqual({ doubled: 42 })
    await env.stackshift.waitForRun(same.id)
    expect(seen).toHaveLength(3)
    expect(seen.filter((payload) => JSON.stringify(payload) === '{"n":1}')).toHaveLength(2)
    expect(seen).toContainEqual({ n: 21 })

    // The source is untouched, and lists what was made from it.
    expect(await env.stackshift.getRun(source.id)).toMatchObject({
      status: 'completed',
      finishedAt: finished.finishedAt,
      rerunOf: undefined,
    })
    const copies = await env.stackshift.listRuns({ sourceRunId: source.id })
    expect(copies.runs.map((run) => run.id).sort()).toEqual([same.id, edited.id].sort())
  })

  it('refuses an unknown run, a bad id and a payload that is not JSON, and stores nothing', async () => {
    const before = await count(`SELECT count(*)::int AS n FROM stackshift.runs`)
    await expect(env.stackshift.rerunRun('0190b6b2-0000-7000-8000-000000000000')).rejects.toThrow(NotFoundError)
    await expect(env.stackshift.rerunRun('not-a-uuid')).rejects.toThrow(/run_id/)
    const source = await env.stackshift.queue('rerun-bad').enqueue('nobody', {})
    const refusal = await new Promise<Error | null>((resolve) =>
      operator().rerunRun({ namespace: '', runId: source.id, payloadJson: '{oops' }, (error) => resolve(error)),
    )
    expect(refusal?.message).toMatch(/payload_json/)
    expect(await count(`SELECT count(*)::int AS n FROM stackshift.runs`)).toBe(before + 1)
  })
})

describe('replayRun', () => {
  it('forks a run from a step: earlier steps are memoized, that step and later ones execute again', async () => {
    const executions = { a: 0, b: 0, c: 0 }
    env.stackshift.job<{ k: string }>('threeSteps', async ({ step }) => {
      const a = await step.run('a', () => (executions.a += 1))
      const b = await step.run('b', () => (executions.b += 1))
      const c = await step.run('c', () => (executions.c += 1))
      return { a, b, c }
    })
    await env.startWorker({ queues: ['replay'], jobs: ['threeSteps'] })
    const source = await env.stackshift.queue('replay').enqueue('threeSteps', { k: 'x' })
    expect((await env.stackshift.waitForRun(source.id)).result).toEqual({ a: 1, b: 1, c: 1 })

    const fork = await env.stackshift.replayRun(source.id, { fromStep: 'b' })
    expect(fork.forkedFrom).toEqual({ runId: source.id, stepId: 'b' })
    const done = await env.stackshift.waitForRun(fork.id)
    // Step a came from the source's memo (its result, 1); b and c ran again.
    expect(done.result).toEqual({ a: 1, b: 2, c: 2 })
    expect(executions).toEqual({ a: 1, b: 2, c: 2 })
    expect(done.steps.map((step) => step.id)).toEqual(['a', 'b', 'c'])
    expect(done.steps.map((step) => step.attempt)).toEqual([0, 1, 1])

    // From the start: nothing kept.
    const fromStart = await env.stackshift.replayRun(source.id)
    expect((await env.stackshift.waitForRun(fromStart.id)).result).toEqual({ a: 2, b: 3, c: 3 })
  })

  it('refuses a step the source does not have', async () => {
    env.stackshift.job('oneStep', async ({ step }) => step.run('only', () => 1))
    await env.startWorker({ queues: ['replay-missing'], jobs: ['oneStep'] })
    const source = await env.stackshift.queue('replay-missing').enqueue('oneStep', {})
    await env.stackshift.waitForRun(source.id)
    const before = await count(`SELECT count(*)::int AS n FROM stackshift.runs`)
    await expect(env.stackshift.replayRun(source.id, { fromStep: 'nope' })).rejects.toThrow(/no step "nope"/)
    expect(await count(`SELECT count(*)::int AS n FROM stackshift.runs`)).toBe(before)
  })
})

describe('listRuns search', () => {
  it('finds runs by id, idempotency key and payload containment, finished or not', async () => {
    env.stackshift.job('tenantJob', () => 'ok')
    const queue = env.stackshift.queue('search')
    const finished = await queue.enqueue('tenantJob', { tenant: { id: 't1' }, n: 1 })
    await env.startWorker({ queues: ['search'], jobs: ['tenantJob'] })
    await env.stackshift.waitForRun(finished.id)
    const queued = await env.stackshift
      .queue('search-idle')
      .enqueue('tenantJob', { tenant: { id: 't1' }, n: 2 }, { idempotencyKey: 'find-me' })
    await env.stackshift.queue('search-idle').enqueue('tenantJob', { tenant: { id: 't2' } })

    const byPayload = await env.stackshift.listRuns({ payloadMatch: { tenant: { id: 't1' } } })
    expect(byPayload.runs.map((run) => run.id)).toEqual([queued.id, finished.id])
    expect((await env.stackshift.listRuns({ payloadMatch: { tenant: { id: 't1' } }, status: 'completed' })).runs.map((r) => r.id)).toEqual([
      finished.id,
    ])
    expect((await env.stackshift.listRuns({ idempotencyKey: 'find-me' })).runs.map((run) => run.id)).toEqual([queued.id])
    expect((await env.stackshift.listRuns({ runId: finished.id })).runs.map((run) => run.id)).toEqual([finished.id])
    expect((await env.stackshift.listRuns({ queue: 'search-idle', job: 'tenantJob' })).runs).toHaveLength(2)
  })

  it('pages newest first across finished and unfinished runs, each run once', async () => {
    env.stackshift.job('pager', () => 1)
    const ids: string[] = []
    for (let i = 0; i < 7; i++) ids.push((await env.stackshift.queue('pages').enqueue('pager', { i })).id)
    // Finish every other one by hand: the page merges the two kinds.
    await env.db.query(`UPDATE stackshift.runs SET status = 'completed', finished_at = now() WHERE id = ANY($1::uuid[])`, [
      ids.filter((_, i) => i % 2 === 0),
    ])
    const seen: string[] = []
    let cursor: string | undefined
    do {
      const page = await env.stackshift.listRuns({ queue: 'pages', limit: 3, cursor })
      seen.push(...page.runs.map((run) => run.id))
      cursor = page.nextCursor
    } while (cursor)
    expect(seen).toEqual([...ids].reverse())
  })

  it('refuses a payload match that is not a JSON object, naming the field', async () => {
    await expect(env.stackshift.listRuns({ payloadMatch: [1] as unknown as Record<string, unknown> })).rejects.toThrow(
      /payload_match_json.*JSON object/,
    )
    await expect(env.stackshift.listRuns({ runId: 'nope' })).rejects.toThrow(InvalidArgumentError)
  })
})

describe('bulk actions', () => {
  it('counts in a dry run, then cancels the unfinished runs of a selection and skips finished ones', async () => {
    const queue = env.stackshift.queue('bulk-cancel')
    const runs = await Promise.all(Array.from({ length: 250 }, (_, i) => queue.enqueue('never', { i, group: i < 200 ? 'a' : 'b' })))
    const finishedId = runs[0]!.id
    await env.db.query(`UPDATE stackshift.runs SET status = 'completed', finished_at = now() WHERE id = $1`, [finishedId])

    const selection = { queue: 'bulk-cancel', payloadMatch: { group: 'a' } }
    const dry = await env.stackshift.startBulkAction({ action: 'cancel', selection, dryRun: true })
    expect(dry).toEqual({ action: undefined, matched: 200, skipped: 1 })
    expect(await count(`SELECT count(*)::int AS n FROM stackshift.runs WHERE status = 'cancelled'`)).toBe(0)

    const started = await env.stackshift.startBulkAction({ action: 'cancel', selection })
    expect(started).toMatchObject({ matched: 200, skipped: 1, action: { action: 'cancel', status: 'running' } })
    const done = await waitUntil(
      () => env.stackshift.getBulkAction(started.action!.id),
      (action) => action.status === 'completed',
    )
    expect(done).toMatchObject({ handled: 199, skipped: 1, selection: { queue: 'bulk-cancel', payloadMatch: { group: 'a' } } })
    expect(await count(`SELECT count(*)::int AS n FROM stackshift.runs WHERE queue = 'bulk-cancel' AND status = 'cancelled'`)).toBe(199)
    expect(
      await count(
        `SELECT count(*)::int AS n FROM stackshift.runs WHERE queue = 'bulk-cancel' AND payload @> '{"group":"b"}' AND status = 'queued'`,
      ),
    ).toBe(50)
    expect((await env.stackshift.listBulkActions()).map((action) => action.id)).toContain(started.action!.id)
  })

  it('is carried on from where it stopped by another server when its taker died, each run once', async () => {
    const queue = env.stackshift.queue('bulk-resume')
    const ids: string[] = []
    for (let i = 0; i < 30; i++) ids.push((await queue.enqueue('never', { i })).id)
    // A bulk rerun that a server took and worked on as far as the 10 newest runs, then died.
    const actionId = '0190b6b2-0000-4000-8000-00000000beef'
    const newest = [...ids].reverse()
    await env.db.query(
      `INSERT INTO stackshift.bulk_actions (id, namespace, kind, selection, from_step_id, status, id_ceiling, cursor, handled, lease_expires_at)
       VALUES ($1, 'default', 'rerun', '{"queue":"bulk-resume"}', '', 'running', $2, $3, 10, now() - interval '1 second')`,
      [actionId, '01ffffff-ffff-7fff-bfff-ffffffffffff', newest[9]],
    )
    const other = await startTestServer(env.databaseUrl)
    try {
      const done = await waitUntil(
        () => env.stackshift.getBulkAction(actionId),
        (action) => action.status === 'completed',
      )
      expect(done.handled).toBe(30)
      // Only the 20 runs below the cursor were rerun, each once.
      const { rows } = await env.db.query<{ source: string; n: number }>(
        `SELECT source_run_id::text AS source, count(*)::int AS n FROM stackshift.runs WHERE source_run_id IS NOT NULL AND queue = 'bulk-resume' GROUP BY 1`,
      )
      expect(rows.map((row) => row.source).sort()).toEqual(newest.slice(10).sort())
      expect(rows.every((row) => row.n === 1)).toBe(true)
    } finally {
      await other.stop()
    }
  })

  it('replays each selected run from a step and skips runs without it', async () => {
    env.stackshift.job('twoSteps', async ({ step, payload }) => {
      const first = await step.run('first', () => 'memo')
      if ((payload as { short?: boolean }).short) return first
      return step.run('second', () => first + '!')
    })
    await env.startWorker({ queues: ['bulk-replay'], jobs: ['twoSteps'] })
    const queue = env.stackshift.queue('bulk-replay')
    const long = await queue.enqueue('twoSteps', {})
    const short = await queue.enqueue('twoSteps', { short: true })
    await env.stackshift.waitForRun(long.id)
    await env.stackshift.waitForRun(short.id)
    const started = await env.stackshift.startBulkAction({ action: 'replay', selection: { queue: 'bulk-replay' }, fromStep: 'second' })
    expect(started).toMatchObject({ matched: 2, skipped: 1 })
    await waitUntil(
      () => env.stackshift.getBulkAction(started.action!.id),
      (action) => action.status === 'completed',
    )
    const forks = await env.stackshift.listRuns({ sourceRunId: long.id })
    expect(forks.runs).toHaveLength(1)
    expect(forks.runs[0]!.forkedFrom).toEqual({ runId: long.id, stepId: 'second' })
    expect((await env.stackshift.waitForRun(forks.runs[0]!.id)).result).toBe('memo!')
    expect((await env.stackshift.listRuns({ sourceRunId: short.id })).runs).toHaveLength(0)
  })

  it('refuses a replay step on another action and an unspecified kind', async () => {
    await expect(env.stackshift.startBulkAction({ action: 'cancel', selection: {}, fromStep: 'x' })).rejects.toThrow(/from_step_id/)
    const refusal = await new Promise<Error | null>((resolve) =>
      operator().startBulkAction(StartBulkActionRequest.fromPartial({ dryRun: true }), (error) => resolve(error)),
    )
    expect(refusal?.message).toMatch(/kind/)
  })
})

describe('events, workers and queues', () => {
  it('lists events newest first with the runs each resumed, page by page', async () => {
    env.stackshift.job('awaitPayment', async ({ step, payload }) =>
      step.waitForEvent('paid', { event: 'order.paid', match: payload as Record<string, unknown>, timeout: '1h' }),
    )
    await env.startWorker({ queues: ['events-list'], jobs: ['awaitPayment'] })
    const run = await env.stackshift.queue('events-list').enqueue('awaitPayment', { orderId: 'o1' })
    await waitUntil(
      () => env.stackshift.getRun(run.id),
      (current) => current.status === 'waiting',
    )
    const unrelated = await env.stackshift.sendEvent('order.paid', { orderId: 'o2' })
    const paid = await env.stackshift.sendEvent('order.paid', { orderId: 'o1' })
    await env.stackshift.waitForRun(run.id)

    const first = await env.stackshift.listEvents({ name: 'order.paid', limit: 1 })
    expect(first.events).toMatchObject([{ id: paid.id, data: { orderId: 'o1' }, deliveries: [{ runId: run.id, stepId: 'paid' }] }])
    const second = await env.stackshift.listEvents({ name: 'order.paid', limit: 1, cursor: first.nextCursor })
    expect(second.events).toMatchObject([{ id: unrelated.id, deliveries: [] }])
    const third = await env.stackshift.listEvents({ name: 'order.paid', limit: 1, cursor: second.nextCursor })
    expect(third).toEqual({ events: [], nextCursor: undefined })
  })

  it('lists the workers connected to every server, with their queues, jobs and SDK', async () => {
    const other = await startTestServer(env.databaseUrl)
    const client = new StackShift({ address: other.address })
    client.job('remote', () => 1)
    const worker = client.worker({ queues: ['workers-list'], jobs: ['remote'], concurrency: 3 })
    try {
      await worker.start()
      const listed = await waitUntil(
        () => env.stackshift.listWorkers(),
        (workers) => workers.some((w) => w.queues.includes('workers-list')),
      )
      const remote = listed.find((w) => w.queues.includes('workers-list'))!
      // Free slots as the server counts them: the worker's concurrency and its prefetch.
      expect(remote.jobs).toEqual(['remote'])
      expect(remote.serverId).toMatch(/^[0-9a-f]{16}$/)
      expect(remote.freeSlots).toBeGreaterThanOrEqual(3)
      expect(remote.sdk).toMatch(/^stackshift-ts\//)
      await worker.stop()
      await waitUntil(
        () => env.stackshift.listWorkers(),
        (workers) => !workers.some((w) => w.queues.includes('workers-list')),
      )
    } finally {
      await worker.stop()
      client.close()
      await other.stop()
    }
  })

  it('reports queue depth by state and the last hour by minute', async () => {
    env.stackshift.job('statJob', ({ payload }) => {
      if ((payload as { fail?: boolean }).fail) throw new Error('no')
      return 1
    })
    const queue = env.stackshift.queue('stats')
    await queue.enqueue('statJob', {}, { delay: '1h' })
    const ok = await queue.enqueue('statJob', {})
    const bad = await queue.enqueue('statJob', { fail: true }, { maxAttempts: 1 })
    await env.startWorker({ queues: ['stats'], jobs: ['statJob'] })
    await env.stackshift.waitForRun(ok.id)
    await env.stackshift.waitForRun(bad.id)
    await env.stackshift.queue('stats').enqueue('statJob', {}, { idempotencyKey: 'ready-1' })
    const [stats] = await env.stackshift.getQueueStats({ queue: 'stats' })
    expect(stats).toMatchObject({ queue: 'stats', delayed: 1 })
    const totals = stats!.minutes.reduce(
      (sum, minute) => ({ completed: sum.completed + minute.completed, failed: sum.failed + minute.failed }),
      {
        completed: 0,
        failed: 0,
      },
    )
    expect(totals.completed).toBeGreaterThanOrEqual(1)
    expect(totals.failed).toBe(1)
    expect(stats!.minutes.reduce((sum, minute) => sum + minute.started, 0)).toBeGreaterThanOrEqual(2)
  })
})
