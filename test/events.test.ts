import { type ReceivedEvent } from '@stackshift/sdk'
import { expect, it } from 'vitest'
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

it('race: an event sent while the wait is being registered resumes the run exactly once (500 trials)', async () => {
  const trials = 500
  const sends: Array<Promise<unknown>> = []
  const afterWait = new Map<number, number>()
  env.stackshift.job<{ trial: number }>('racer', async ({ payload, step }) => {
    const { trial } = payload
    // The send starts now; the wait is registered while it is in flight. Some
    // trials let the send get ahead first, so both orders happen.
    sends.push(env.stackshift.sendEvent('race.go', { trial }, { id: `race-${trial}` }))
    if (trial % 3 === 1) await new Promise((resolve) => setImmediate(resolve))
    if (trial % 3 === 2) await new Promise((resolve) => setTimeout(resolve, trial % 5))
    const event = await step.waitForEvent<{ trial: number }>('go', { event: 'race.go', match: { trial }, timeout: '5m' })
    await step.run('after', () => afterWait.set(trial, (afterWait.get(trial) ?? 0) + 1).size)
    return event?.id
  })
  await env.startWorker({ queues: ['race'], jobs: ['racer'], concurrency: 50 })

  const runs = await env.stackshift
    .queue('race')
    .enqueueMany(Array.from({ length: trials }, (_, trial) => ({ job: 'racer', payload: { trial } })))
  const done = await Promise.all(runs.map((run) => env.stackshift.waitForRun(run.id, { timeoutMs: 60_000 })))
  await Promise.all(sends)

  expect(done.map((run) => run.status)).toEqual(runs.map(() => 'completed'))
  expect(done.map((run) => run.result)).toEqual(runs.map((_, trial) => `race-${trial}`))
  expect([...afterWait.values()].every((count) => count === 1)).toBe(true)
  expect(afterWait.size).toBe(trials)
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
  await new Promise((resolve) => setTimeout(resolve, 1000))
  await env.startWorker({ queues: ['lookback'], jobs: ['lookBack'] })

  const queue = env.stackshift.queue('lookback')
  const [none, wide, narrow] = await Promise.all([
    queue.enqueue('lookBack', {}),
    queue.enqueue('lookBack', { lookback: '5m' }),
    queue.enqueue('lookBack', { lookback: '200ms' }),
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

  const late = await env.stackshift.sendEvent('expiring.paid', { orderId: 'o_late' })
  expect(late.resumedRuns).toBe(0)
  await new Promise((resolve) => setTimeout(resolve, 300))
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
