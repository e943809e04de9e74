import { type EnqueuedRun, type ReceivedEvent, type SentEvent } from '@stackshift/sdk'
import { expect, it } from 'vitest'
import { connect } from './support/database.js'
import { useTestEnvironment } from './support/environment.js'
import { waitUntil } from './support/wait-until.js'

const env = useTestEnvironment()

async function countWaiting(job: string): Promise<number> {
  const { rows } = await env.db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM stackshift.runs WHERE job = $1 AND status = 'waiting'`,
    [job],
  )
  return rows[0]!.n
}

it('race: an event sent while the wait is being registered resumes the run exactly once, whichever comes first (200 trials)', async () => {
  const trials = 200
  const sends = new Map<number, Promise<SentEvent>>()
  const executions = new Map<number, number>()
  const afterWait = new Map<number, number>()
  const bump = (counts: Map<number, number>, trial: number) => counts.set(trial, (counts.get(trial) ?? 0) + 1)
  env.stackshift.job<{ trial: number }>('racer', async ({ payload, step }) => {
    const { trial } = payload
    bump(executions, trial)
    // The send starts now; the wait is registered while it is in flight. Some
    // trials let the send get ahead first, so both orders happen.
    if (!sends.has(trial)) sends.set(trial, env.stackshift.sendEvent('race.go', { trial }, { id: `race-${trial}` }))
    if (trial % 3 === 1) await new Promise((resolve) => setImmediate(resolve))
    if (trial % 3 === 2) await new Promise((resolve) => setTimeout(resolve, trial % 5))
    const event = await step.waitForEvent<{ trial: number }>('go', { event: 'race.go', match: { trial }, timeout: '5m' })
    await step.run('after', () => bump(afterWait, trial).size)
    return event?.id
  })
  await env.startWorker({ queues: ['race'], jobs: ['racer'], concurrency: 50 })

  const runs = await env.stackshift
    .queue('race')
    .enqueueMany(Array.from({ length: trials }, (_, trial) => ({ job: 'racer', payload: { trial } })))
  const done = await Promise.all(runs.map((run) => env.stackshift.waitForRun(run.id)))
  expect(done.map((run) => run.status)).toEqual(runs.map(() => 'completed'))
  expect(done.map((run) => run.result)).toEqual(runs.map((_, trial) => `race-${trial}`))
  // Which came first shows in what the send did, and each trial must be whole in its
  // order: an event stored before the wait was registered resumed no run (the wait
  // found it, the handler ran once); one stored after resumed the waiting run (the
  // handler ran again after it). How many trials take each order depends on the
  // machine; the next test makes each happen on purpose.
  for (let trial = 0; trial < trials; trial++) {
    const { resumedRuns } = await sends.get(trial)!
    expect([trial, resumedRuns, executions.get(trial)]).toEqual(resumedRuns === 0 ? [trial, 0, 1] : [trial, 1, 2])
  }
  expect(afterWait.size).toBe(trials)
  expect([...afterWait.values()].every((count) => count === 1)).toBe(true)
  const { rows } = await env.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stackshift.waits`)
  expect(rows[0]!.n).toBe(0)
})

it('a send and a wait registration of one event name are serialized: whichever takes the name first, the run resumes exactly once', async () => {
  const executions = new Map<string, number>()
  env.stackshift.job<{ order: string }>('lockstep', async ({ payload, step, run }) => {
    executions.set(run.id, (executions.get(run.id) ?? 0) + 1)
    const event = await step.waitForEvent<{ order: string }>('go', { event: 'lockstep.go', match: { order: payload.order }, timeout: '5m' })
    return event?.data.order
  })
  await env.startWorker({ queues: ['lockstep'], jobs: ['lockstep'] })
  // The transactions that send or wait for events of one name take this advisory lock
  // first (server/src/db/queries/events.ts). Holding it, the test lets both queue up
  // behind it in the order it chooses; PostgreSQL grants a lock to its waiters in turn.
  const blocker = await connect(env.databaseUrl)
  const waitingForLock = async () =>
    (
      await env.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'`,
      )
    ).rows[0]!.n
  const inOrder = async (order: 'eventFirst' | 'waitFirst') => {
    await blocker.query('BEGIN')
    await blocker.query(`SELECT pg_advisory_xact_lock(hashtextextended('stackshift.event:default:lockstep.go', 0))`)
    const send = () => env.stackshift.sendEvent('lockstep.go', { order }, { id: `lockstep-${order}` })
    const enqueue = () => env.stackshift.queue('lockstep').enqueue('lockstep', { order })
    let sent: Promise<SentEvent>
    let enqueued: EnqueuedRun
    if (order === 'eventFirst') {
      sent = send()
      await waitUntil(waitingForLock, (n) => n === 1)
      enqueued = await enqueue()
    } else {
      enqueued = await enqueue()
      await waitUntil(waitingForLock, (n) => n === 1)
      sent = send()
    }
    await waitUntil(waitingForLock, (n) => n === 2)
    await blocker.query('COMMIT')
    return { sent: await sent, done: await env.stackshift.waitForRun(enqueued.id) }
  }
  try {
    const eventFirst = await inOrder('eventFirst')
    // The wait found the event already stored: the run never suspended.
    expect([eventFirst.sent.resumedRuns, eventFirst.done.status, eventFirst.done.result]).toEqual([0, 'completed', 'eventFirst'])
    expect(executions.get(eventFirst.done.id)).toBe(1)
    const waitFirst = await inOrder('waitFirst')
    // The wait was registered first: the send found it and resumed the run.
    expect([waitFirst.sent.resumedRuns, waitFirst.done.status, waitFirst.done.result]).toEqual([1, 'completed', 'waitFirst'])
    expect(executions.get(waitFirst.done.id)).toBe(2)
    for (const { done } of [eventFirst, waitFirst]) {
      expect(done.steps).toMatchObject([{ id: 'go', kind: 'wait', status: 'completed' }])
    }
  } finally {
    await blocker.end()
  }
  const { rows } = await env.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stackshift.waits`)
  expect(rows[0]!.n).toBe(0)
})

it('match correlates: 100 runs wait, 100 events arrive in random order, each run receives its own', async () => {
  env.stackshift.job<{ orderId: string }>('awaitPayment', async ({ payload, step }) => {
    const paid = await step.waitForEvent<{ orderId: string; amount: number }>('wait-payment', {
      event: 'payment.confirmed',
      match: { orderId: payload.orderId },
      timeout: '1h',
    })
    return paid && { orderId: paid.data.orderId, amount: paid.data.amount, id: paid.id }
  })
  await env.startWorker({ queues: ['orders'], jobs: ['awaitPayment'], concurrency: 10 })
  const orders = Array.from({ length: 100 }, (_, i) => `o_${i}`)
  const runs = await env.stackshift.queue('orders').enqueueMany(orders.map((orderId) => ({ job: 'awaitPayment', payload: { orderId } })))
  await waitUntil(
    () => countWaiting('awaitPayment'),
    (n) => n === 100,
  )
  // A waiting run holds no slot: 100 wait on a worker with 10.
  const shuffled = orders.map((orderId, i) => ({ orderId, amount: i, key: Math.random() })).sort((a, b) => a.key - b.key)
  const sent = await Promise.all(
    shuffled.map(({ orderId, amount }) => env.stackshift.sendEvent('payment.confirmed', { orderId, amount }, { id: `pay-${orderId}` })),
  )
  expect(sent.reduce((sum, event) => sum + event.resumedRuns, 0)).toBe(100)

  const done = await Promise.all(runs.map((run) => env.stackshift.waitForRun(run.id)))
  done.forEach((run, i) => {
    expect(run.result).toEqual({ orderId: `o_${i}`, amount: i, id: `pay-o_${i}` })
    expect(run.steps.find((step) => step.id === 'wait-payment')).toMatchObject({ kind: 'wait', status: 'completed' })
  })
})

it('lookback: an event received before the run started matches only a wait whose lookback covers it', async () => {
  env.stackshift.job<{ lookback?: string }>('lookBack', async ({ payload, step }) => {
    const event = await step.waitForEvent('ping', {
      event: 'lookback.ping',
      match: { key: 'a' },
      timeout: 500,
      ...(payload.lookback ? { lookback: payload.lookback } : {}),
    })
    return event?.id ?? null
  })
  const sent = await env.stackshift.sendEvent('lookback.ping', { key: 'a' }, { id: 'ping-1' })
  expect(sent.resumedRuns).toBe(0)
  // Received a minute ago.
  await env.db.query(`UPDATE stackshift.events SET received_at = received_at - interval '1 minute' WHERE id = 'ping-1'`)
  await env.startWorker({ queues: ['lookback'], jobs: ['lookBack'] })

  const queue = env.stackshift.queue('lookback')
  const [none, wide, narrow] = await Promise.all([
    queue.enqueue('lookBack', {}),
    queue.enqueue('lookBack', { lookback: '5m' }),
    queue.enqueue('lookBack', { lookback: '30s' }),
  ])
  expect((await env.stackshift.waitForRun(none.id)).result).toBeNull()
  expect((await env.stackshift.waitForRun(wide.id)).result).toBe('ping-1')
  expect((await env.stackshift.waitForRun(narrow.id)).result).toBeNull()
})

it('a wait that times out returns null, and a later matching event does not resume the run again', async () => {
  let executions = 0
  env.stackshift.job<{ orderId: string }>('expiring', async ({ payload, step }) => {
    executions++
    const paid = await step.waitForEvent('wait-payment', { event: 'expiring.paid', match: { orderId: payload.orderId }, timeout: 300 })
    if (paid === null) return { status: 'expired' }
    return { status: 'paid' }
  })
  await env.startWorker({ queues: ['expiring'], jobs: ['expiring'] })
  const { id } = await env.stackshift.queue('expiring').enqueue('expiring', { orderId: 'o_late' })
  const done = await env.stackshift.waitForRun(id)
  expect(done.result).toEqual({ status: 'expired' })
  expect(done.steps).toMatchObject([{ id: 'wait-payment', kind: 'wait', status: 'completed', result: null }])

  // The send decides in its transaction which runs it resumes: none, and no wait is left for it.
  const late = await env.stackshift.sendEvent('expiring.paid', { orderId: 'o_late' })
  expect(late.resumedRuns).toBe(0)
  const { rows } = await env.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stackshift.waits WHERE run_id = $1`, [id])
  expect(rows[0]!.n).toBe(0)
  expect(await env.stackshift.getRun(id)).toMatchObject({ status: 'completed', result: { status: 'expired' } })
  expect(executions).toBe(2)
})

it('the same event id sent twice is stored once and resumes a waiting run once', async () => {
  let resumed = 0
  env.stackshift.job('dedupe', async ({ step }) => {
    const event = await step.waitForEvent<{ n: number }>('wait', { event: 'dedupe.go', timeout: '1h' })
    resumed++
    return event!.data
  })
  await env.startWorker({ queues: ['dedupe'], jobs: ['dedupe'] })
  const { id } = await env.stackshift.queue('dedupe').enqueue('dedupe', {})
  await waitUntil(
    () => countWaiting('dedupe'),
    (n) => n === 1,
  )
  const [first, second] = await Promise.all([
    env.stackshift.sendEvent('dedupe.go', { n: 1 }, { id: 'evt_123' }),
    env.stackshift.sendEvent('dedupe.go', { n: 2 }, { id: 'evt_123' }),
  ])
  expect([first.deduplicated, second.deduplicated].sort()).toEqual([false, true])
  expect(first.resumedRuns + second.resumedRuns).toBe(1)
  // Both callers get the event as stored.
  expect(second.event.data).toEqual(first.event.data)

  const done = await env.stackshift.waitForRun(id)
  expect(done.result).toEqual(first.event.data)
  expect(resumed).toBe(1)
  const { rows } = await env.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stackshift.events WHERE id = 'evt_123'`)
  expect(rows[0]!.n).toBe(1)
})

it('step.sendEvent is memoized: a run retried after a failure does not send again, and the event resumes its waiter once', async () => {
  let attempts = 0
  env.stackshift.job<{ orderId: string }>('fulfil', async ({ payload, step }) => {
    attempts++
    const sent = await step.sendEvent('announce', { name: 'order.fulfilled', data: { orderId: payload.orderId } })
    if (attempts === 1) throw new Error('flaky after sending')
    return sent
  })
  const received: Array<ReceivedEvent<{ orderId: string }>> = []
  env.stackshift.job<{ orderId: string }>('listen', async ({ payload, step }) => {
    const event = await step.waitForEvent<{ orderId: string }>('fulfilled', {
      event: 'order.fulfilled',
      match: { orderId: payload.orderId },
      timeout: '1h',
    })
    received.push(event!)
    return event!.id
  })
  await env.startWorker({ queues: ['fulfilment'], jobs: ['fulfil', 'listen'] })
  const listener = await env.stackshift.queue('fulfilment').enqueue('listen', { orderId: 'o_9' })
  await waitUntil(
    () => countWaiting('listen'),
    (n) => n === 1,
  )
  const run = await env.stackshift.queue('fulfilment').enqueue('fulfil', { orderId: 'o_9' })
  const done = await env.stackshift.waitForRun(run.id)
  expect(done.status).toBe('completed')
  expect(done.attemptHistory.map((attempt) => attempt.outcome)).toEqual(['failed', 'completed'])
  expect(done.steps).toMatchObject([{ id: 'announce', kind: 'send', status: 'completed', attempt: 1 }])

  const heard = await env.stackshift.waitForRun(listener.id)
  expect(heard.result).toBe((done.result as { id: string }).id)
  expect(received).toHaveLength(1)
  expect(received[0]!.receivedAt).toBeInstanceOf(Date)
  const { rows } = await env.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM stackshift.events WHERE name = 'order.fulfilled'`)
  expect(rows[0]!.n).toBe(1)
})

it('a loop of waits consumes events one by one, including events that arrived while the run was executing', async () => {
  env.stackshift.job('collector', async ({ step }) => {
    const seen: number[] = []
    for (let i = 0; i < 3; i++) {
      const tick = await step.waitForEvent<{ n: number }>('tick', { event: 'collector.tick', timeout: '1m' })
      seen.push(tick!.data.n)
    }
    return seen
  })
  await env.startWorker({ queues: ['collector'], jobs: ['collector'] })
  const { id } = await env.stackshift.queue('collector').enqueue('collector', {})
  await waitUntil(
    () => countWaiting('collector'),
    (n) => n === 1,
  )
  for (const n of [1, 2, 3]) await env.stackshift.sendEvent('collector.tick', { n })
  const done = await env.stackshift.waitForRun(id)
  expect(done.result).toEqual([1, 2, 3])
  expect(done.steps.map((step) => step.id)).toEqual(['tick', 'tick:1', 'tick:2'])
})

it('a wait that takes an event received before it leaves the events received after that one to the next wait', async () => {
  let reachedGate!: () => void
  const atGate = new Promise<void>((resolve) => (reachedGate = resolve))
  let openGate!: () => void
  const gate = new Promise<void>((resolve) => (openGate = resolve))
  env.stackshift.job('tally', async ({ step }) => {
    const first = await step.waitForEvent<{ n: number }>('first', { event: 'tally.tick', timeout: '5m' })
    // Resumed by the first event: the next two are received before the run
    // reaches its next wait, which then takes the second at once.
    reachedGate()
    await gate
    const second = await step.waitForEvent<{ n: number }>('second', { event: 'tally.tick', timeout: '5m' })
    const third = await step.waitForEvent<{ n: number }>('third', { event: 'tally.tick', timeout: '5m' })
    return [first, second, third].map((event) => event?.data.n)
  })
  await env.startWorker({ queues: ['tally'], jobs: ['tally'] })
  const { id } = await env.stackshift.queue('tally').enqueue('tally', {})
  await waitUntil(
    () => countWaiting('tally'),
    (n) => n === 1,
  )
  await env.stackshift.sendEvent('tally.tick', { n: 1 })
  await atGate
  await env.stackshift.sendEvent('tally.tick', { n: 2 })
  await env.stackshift.sendEvent('tally.tick', { n: 3 })
  openGate()
  const done = await env.stackshift.waitForRun(id, { timeoutMs: 15_000 })
  expect(done.result).toEqual([1, 2, 3])
})

it('a wait sent again after it took an event at once takes the same event, and the run does not start waiting', async () => {
  // What a worker does when the server died after storing the wait and before answering.
  await env.stackshift.sendEvent('repeat.go', { order: 7 }, { id: 'repeat-7' })
  await env.raw.runs('Enqueue', { run: { queue: 'repeat-waits', job: 'repeatWait', payload_json: '{}' } })
  const { tasks } = await env.raw.workers('ClaimTask', { queues: ['repeat-waits'], jobs: ['repeatWait'], max_tasks: 1 })
  const suspension = {
    run_id: tasks[0]!.run_id,
    lease_token: tasks[0]!.lease_token,
    step_id: 'go',
    event: { name: 'repeat.go', match_json: '{"order":7}', timeout_ms: 60_000, lookback_ms: 60_000 },
  }
  const first = await env.raw.workers('SuspendRun', suspension)
  const again = await env.raw.workers('SuspendRun', suspension)

  expect([first.suspended, first.event?.id]).toEqual([false, 'repeat-7'])
  expect(again).toEqual(first)
  const { rows } = await env.db.query<{ status: string; waits: number; step: string }>(
    `SELECT r.status::text AS status, (SELECT count(*)::int FROM stackshift.waits WHERE run_id = r.id) AS waits,
       (SELECT s.status::text FROM stackshift.steps AS s WHERE s.run_id = r.id AND s.step_id = 'go') AS step
     FROM stackshift.runs AS r WHERE r.id = $1`,
    [suspension.run_id],
  )
  expect(rows[0]).toEqual({ status: 'running', waits: 0, step: 'completed' })
})

it('GetRun names the event a wait in progress waits for, and its match; the ended wait has the event as its result', async () => {
  env.stackshift.job<{ orderId: string }>('awaitShipment', ({ payload, step }) =>
    step.waitForEvent('shipped', { event: 'order.shipped', match: { orderId: payload.orderId }, timeout: '1h' }),
  )
  await env.startWorker({ queues: ['shipping'], jobs: ['awaitShipment'] })
  const { id } = await env.stackshift.queue('shipping').enqueue('awaitShipment', { orderId: 's-1' })
  await waitUntil(
    () => countWaiting('awaitShipment'),
    (n) => n === 1,
  )
  const waiting = (await env.raw.runs('GetRun', { run_id: id })).run as unknown as {
    steps: Array<{ id: string; wait_event_name: string; wait_match_json: string }>
  }
  expect(waiting.steps).toMatchObject([{ id: 'shipped', wait_event_name: 'order.shipped', wait_match_json: '{"orderId": "s-1"}' }])

  await env.stackshift.sendEvent('order.shipped', { orderId: 's-1' })
  expect((await env.stackshift.waitForRun(id)).status).toBe('completed')
  const ended = (await env.raw.runs('GetRun', { run_id: id })).run as unknown as {
    steps: Array<{ id: string; wait_event_name: string; result_json: string }>
  }
  expect(ended.steps).toMatchObject([{ id: 'shipped', wait_event_name: '' }])
  expect(JSON.parse(ended.steps[0]!.result_json)).toMatchObject({ name: 'order.shipped', data: { orderId: 's-1' } })
})
