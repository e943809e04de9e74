import { credentials } from '@grpc/grpc-js'
import { CreateScheduleRequest, ScheduleServiceClient } from '@stackshift/proto/schedule-service'
import { InvalidArgumentError, NotFoundError, ResourceExhaustedError, type Run } from '@stackshift/sdk'
import { afterAll, describe, expect, it } from 'vitest'
import { useTestEnvironment } from './support/environment.js'
import { waitUntil } from './support/wait-until.js'

const env = useTestEnvironment()

/** A generated client, for requests the SDK never sends. */
let scheduleClient: ScheduleServiceClient | undefined
function schedules(): ScheduleServiceClient {
  scheduleClient ??= new ScheduleServiceClient(env.server.address, credentials.createInsecure())
  return scheduleClient
}
afterAll(() => scheduleClient?.close())

interface TickRow {
  id: string
  status: string
  scheduled_at: Date
  idempotency_key: string | null
  origin: string | null
}

/** The runs of a schedule, oldest tick first. */
async function runsOf(scheduleId: string): Promise<TickRow[]> {
  const { rows } = await env.db.query<TickRow>(
    `SELECT id::text AS id, status, scheduled_at, idempotency_key, origin FROM stackshift.runs WHERE schedule_id = $1 ORDER BY scheduled_at`,
    [scheduleId],
  )
  return rows
}

async function count(sqlText: string, values: unknown[] = []): Promise<number> {
  const { rows } = await env.db.query<{ n: number }>(sqlText, values)
  return rows[0]!.n
}

/**
 * Waits for a pass of the firing task that starts after now: a marker
 * schedule is made due in SQL, and its run appears once a pass handled it,
 * so anything else that pass could fire has been fired.
 */
async function afterNextPass(): Promise<void> {
  const id = `marker-${Math.random().toString(36).slice(2)}`
  await env.stackshift.schedules.create({ id, cron: '0 0 1 1 *', queue: 'markers', job: 'marker' })
  await env.db.query(`UPDATE stackshift.schedules SET next_fire_at = date_trunc('second', now()) - interval '1 second' WHERE id = $1`, [id])
  await waitUntil(
    () => runsOf(id),
    (runs) => runs.length === 1,
  )
  await env.stackshift.schedules.delete(id)
}

describe('defining schedules', () => {
  it('stores a schedule and shows its next five fire times in its zone', async () => {
    const created = await env.stackshift.schedules.create({
      id: 'nightly-report',
      cron: '0 2 * * *',
      timezone: 'Europe/Paris',
      queue: 'reports',
      job: 'buildReport',
      payload: { kind: 'daily' },
      overlap: 'skip',
      catchupWindow: '1h',
      paused: true,
    })
    expect(created).toMatchObject({
      id: 'nightly-report',
      cron: '0 2 * * *',
      timezone: 'Europe/Paris',
      queue: 'reports',
      job: 'buildReport',
      payload: { kind: 'daily' },
      overlap: 'skip',
      catchupWindowMs: 3_600_000,
      paused: true,
      recentRuns: [],
    })
    expect(created.nextFireTimes).toHaveLength(5)
    for (const tick of created.nextFireTimes) {
      expect(tick.getTime()).toBeGreaterThan(Date.now())
      const local = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Paris', hour: '2-digit', minute: '2-digit' }).format(tick)
      expect(local).toBe('02:00')
    }
    expect((await env.stackshift.schedules.get('nightly-report')).nextFireTimes).toEqual(created.nextFireTimes)
    expect((await env.stackshift.schedules.list()).map((s) => s.id)).toContain('nightly-report')
  })

  it('redefines a schedule with the same id, keeping its paused state', async () => {
    await env.stackshift.schedules.create({ id: 'redefined', cron: '0 * * * *', job: 'a', paused: true })
    const again = await env.stackshift.schedules.create({ id: 'redefined', cron: '30 * * * *', job: 'b', payload: [1] })
    expect(again).toMatchObject({ cron: '30 * * * *', job: 'b', payload: [1], paused: true, timezone: 'UTC', queue: 'default' })
    expect(again.nextFireTimes[0]!.getUTCMinutes()).toBe(30)
  })

  it.each([
    [{ cron: '61 * * * *' }, 'schedule.cron'],
    [{ cron: '* * *' }, 'schedule.cron'],
    [{ cron: '0 0 30 2 *' }, 'schedule.cron'],
    [{ timezone: 'Europe/Atlantis' }, 'schedule.timezone'],
    [{ id: '' }, 'schedule.id'],
    [{ id: 'has space' }, 'schedule.id'],
    [{ job: '' }, 'schedule.job'],
    [{ catchupWindowMs: 5 }, 'schedule.catchup_window_ms'],
    [{ overlap: 99 }, 'schedule.overlap'],
    [{ payloadJson: '{oops' }, 'schedule.payload_json'],
  ])('refuses %j with INVALID_ARGUMENT naming %s, and stores nothing', async (change, field) => {
    const before = await count(`SELECT count(*)::int AS n FROM stackshift.schedules`)
    const schedule = { id: 'bad', cron: '* * * * *', timezone: '', job: 'j', ...change }
    const refusal = await new Promise<Error | null>((resolve) =>
      schedules().createSchedule(CreateScheduleRequest.fromPartial({ schedule }), (error) => resolve(error)),
    )
    expect(refusal?.message).toContain(`INVALID_ARGUMENT: ${field}:`)
    expect(await count(`SELECT count(*)::int AS n FROM stackshift.schedules`)).toBe(before)
  })

  it('refuses a bad catch-up window and overlap in the SDK, and names them', async () => {
    await expect(env.stackshift.schedules.create({ id: 'x', cron: '* * * * *', job: 'j', catchupWindow: 'soon' })).rejects.toThrow(
      /catchupWindow/,
    )
    await expect(env.stackshift.schedules.create({ id: 'x', cron: '* * * * *', job: 'j', overlap: 'never' as 'skip' })).rejects.toThrow(
      InvalidArgumentError,
    )
  })

  it('names the field of every other bad request: an id, a page, a backfill range', async () => {
    const refusal = (call: (callback: (error: Error | null) => void) => void) =>
      new Promise<string | undefined>((resolve) => call((error) => resolve(error?.message)))
    expect(await refusal((done) => schedules().getSchedule({ namespace: '', scheduleId: 'no spaces' }, done))).toMatch(
      /INVALID_ARGUMENT: schedule_id: /,
    )
    expect(await refusal((done) => schedules().listSchedules({ namespace: '', limit: 501, cursor: '' }, done))).toMatch(
      /INVALID_ARGUMENT: limit: must be at most 500/,
    )
    expect(await refusal((done) => schedules().listSchedules({ namespace: 'bad namespace', limit: 0, cursor: '' }, done))).toMatch(
      /INVALID_ARGUMENT: namespace: /,
    )
    const backfill = (startAt: Date | undefined, endAt: Date | undefined) =>
      refusal((done) => schedules().backfillSchedule({ namespace: '', scheduleId: 'x', startAt, endAt }, done))
    expect(await backfill(undefined, new Date())).toMatch(/INVALID_ARGUMENT: start_at: is required/)
    expect(await backfill(new Date(), undefined)).toMatch(/INVALID_ARGUMENT: end_at: is required/)
  })

  it('answers NOT_FOUND for a schedule that is not there', async () => {
    await expect(env.stackshift.schedules.get('missing')).rejects.toThrow(NotFoundError)
    await expect(env.stackshift.schedules.pause('missing')).rejects.toThrow(NotFoundError)
    await expect(env.stackshift.schedules.trigger('missing')).rejects.toThrow(NotFoundError)
    await expect(env.stackshift.schedules.delete('missing')).rejects.toThrow(NotFoundError)
  })
})

describe('firing', () => {
  it('hands the tick to the handler and to getRun, with the idempotency key of the tick', async () => {
    const seen: Array<{ scheduledAt: Date | undefined; scheduleId: string | undefined }> = []
    env.stackshift.job('tick', ({ run }) => {
      seen.push({ scheduledAt: run.scheduledAt, scheduleId: run.scheduleId })
    })
    await env.startWorker({ queues: ['ticks'], jobs: ['tick'] })
    await env.stackshift.schedules.create({ id: 'every-second', cron: '* * * * * *', queue: 'ticks', job: 'tick' })
    const [first] = await waitUntil(
      () => runsOf('every-second'),
      (runs) => runs.some((run) => run.status === 'completed'),
    )
    await env.stackshift.schedules.delete('every-second')
    const run: Run = await env.stackshift.getRun(first!.id)
    expect(run.scheduleId).toBe('every-second')
    expect(run.scheduledAt).toEqual(first!.scheduled_at)
    expect(run.scheduledAt!.getUTCMilliseconds()).toBe(0)
    expect(first!.origin).toBe('schedule')
    expect(first!.idempotency_key).toBe(`schedule:every-second:${first!.scheduled_at.toISOString()}`)
    expect(seen).toContainEqual({ scheduledAt: first!.scheduled_at, scheduleId: 'every-second' })
    expect((await env.stackshift.listRuns({ scheduleId: 'every-second' })).runs.map((r) => r.id)).toContain(first!.id)
    // An enqueued run has no tick.
    env.stackshift.job('plain', ({ run }) => ({ scheduledAt: run.scheduledAt ?? null }))
    await env.startWorker({ queues: ['plain'], jobs: ['plain'] })
    const plain = await env.stackshift.queue('plain').enqueue('plain', {})
    expect(await env.stackshift.waitForRun(plain.id)).toMatchObject({ result: { scheduledAt: null }, scheduledAt: undefined })
  })

  it('catches up after the servers were down for three periods, firing each missed tick once, in order', async () => {
    await env.stackshift.schedules.create({
      id: 'minutely',
      cron: '* * * * *',
      job: 'nobody',
      queue: 'catchup',
      overlap: 'allow',
      paused: true,
    })
    // Down since three ticks ago: the schedule's next tick is the minute two minutes before this one.
    const { rows } = await env.db.query<{ first: Date }>(
      `UPDATE stackshift.schedules SET is_paused = false, next_fire_at = date_trunc('minute', now()) - interval '2 minutes'
       WHERE id = 'minutely' RETURNING next_fire_at AS first`,
    )
    const first = rows[0]!.first.getTime()
    const runs = await waitUntil(
      () => runsOf('minutely'),
      (found) => found.length >= 3,
    )
    await env.stackshift.schedules.pause('minutely')
    const ticks = (await runsOf('minutely')).map((run) => run.scheduled_at.getTime())
    // The three missed ticks, each once and a minute apart; a fourth only if a minute began meanwhile.
    expect(ticks.slice(0, 3)).toEqual([first, first + 60_000, first + 120_000])
    expect(ticks.length).toBeLessThanOrEqual(4)
    expect(new Set(ticks).size).toBe(ticks.length)
    expect(runs[0]!.origin).toBe('schedule')
  })

  it('drops missed ticks older than the catch-up window', async () => {
    await env.stackshift.schedules.create({
      id: 'windowed',
      cron: '*/10 * * * * *',
      job: 'nobody',
      queue: 'window',
      overlap: 'allow',
      catchupWindow: '35s',
      paused: true,
    })
    await env.db.query(
      `UPDATE stackshift.schedules SET is_paused = false, next_fire_at = date_trunc('minute', now()) - interval '1 day' WHERE id = 'windowed'`,
    )
    await waitUntil(
      () => runsOf('windowed'),
      (found) => found.length >= 3,
    )
    await env.stackshift.schedules.pause('windowed')
    const { rows } = await env.db.query<{ age_ms: number }>(
      `SELECT (extract(epoch FROM created_at - scheduled_at) * 1000)::float8 AS age_ms FROM stackshift.runs WHERE schedule_id = 'windowed'`,
    )
    // Every tick fired was at most 35 s old when fired: three or four ten-second ticks, not a day of them.
    expect(rows.length).toBeLessThanOrEqual(4)
    for (const { age_ms } of rows) expect(age_ms).toBeLessThanOrEqual(35_000)
  })

  it('fires nothing while paused, and after resuming only ticks after the resume', async () => {
    await env.stackshift.schedules.create({ id: 'pausable', cron: '* * * * * *', job: 'nobody', queue: 'pause', overlap: 'allow' })
    await waitUntil(
      () => runsOf('pausable'),
      (runs) => runs.length >= 1,
    )
    const paused = await env.stackshift.schedules.pause('pausable')
    expect(paused.paused).toBe(true)
    // A tick long overdue while paused: a pass must not fire it.
    await env.db.query(`UPDATE stackshift.schedules SET next_fire_at = now() - interval '5 seconds' WHERE id = 'pausable'`)
    const before = (await runsOf('pausable')).length
    await afterNextPass()
    expect((await runsOf('pausable')).length).toBe(before)

    const resumedAt = Date.now()
    const resumed = await env.stackshift.schedules.resume('pausable')
    expect(resumed.paused).toBe(false)
    expect(resumed.nextFireTimes[0]!.getTime()).toBeGreaterThan(resumedAt - 1000)
    const after = await waitUntil(
      () => runsOf('pausable'),
      (runs) => runs.length > before,
    )
    await env.stackshift.schedules.pause('pausable')
    for (const run of after.slice(before)) expect(run.scheduled_at.getTime()).toBeGreaterThan(resumedAt - 1000)
  })

  it('backfills a day of an hourly schedule with 24 runs, once however often it is asked', async () => {
    await env.stackshift.schedules.create({ id: 'hourly', cron: '0 * * * *', job: 'nobody', queue: 'backfill', paused: true })
    const from = new Date('2026-01-10T00:00:00Z')
    const to = new Date('2026-01-11T00:00:00Z')
    expect(await env.stackshift.schedules.backfill('hourly', { from, to })).toEqual({ fired: 24, existing: 0 })
    expect(await env.stackshift.schedules.backfill('hourly', { from, to })).toEqual({ fired: 0, existing: 24 })
    const runs = await runsOf('hourly')
    expect(runs).toHaveLength(24)
    expect(runs.map((run) => run.scheduled_at.getTime())).toEqual(
      Array.from({ length: 24 }, (_, hour) => from.getTime() + hour * 3_600_000),
    )
    const shown = await env.stackshift.schedules.get('hourly')
    expect(shown.recentRuns.map((run) => run.scheduledAt.getTime())).toEqual(
      Array.from({ length: 5 }, (_, i) => from.getTime() + (23 - i) * 3_600_000),
    )
    await expect(env.stackshift.schedules.backfill('hourly', { from, to: new Date('2028-01-01T00:00:00Z') })).rejects.toThrow(
      ResourceExhaustedError,
    )
    await expect(env.stackshift.schedules.backfill('hourly', { from: to, to: from })).rejects.toThrow(/end_at/)
  })

  it('fires a 02:30 Paris schedule once on the day 02:30 is skipped and once on the day it repeats (by backfill)', async () => {
    await env.stackshift.schedules.create({
      id: 'half-past-two',
      cron: '30 2 * * *',
      timezone: 'Europe/Paris',
      job: 'nobody',
      queue: 'dst',
      paused: true,
    })
    const spring = { from: new Date('2026-03-28T00:00:00Z'), to: new Date('2026-03-30T00:00:00Z') }
    const autumn = { from: new Date('2026-10-24T00:00:00Z'), to: new Date('2026-10-26T00:00:00Z') }
    expect(await env.stackshift.schedules.backfill('half-past-two', spring)).toEqual({ fired: 2, existing: 0 })
    expect(await env.stackshift.schedules.backfill('half-past-two', autumn)).toEqual({ fired: 2, existing: 0 })
    expect((await runsOf('half-past-two')).map((run) => run.scheduled_at.toISOString())).toEqual([
      '2026-03-28T01:30:00.000Z',
      '2026-03-29T01:00:00.000Z', // 03:00 CEST: the skipped 02:30, once
      '2026-10-24T00:30:00.000Z',
      '2026-10-25T00:30:00.000Z', // the first of the two 02:30s, once
    ])
  })

  it('triggers one run now, with the trigger as its tick', async () => {
    await env.stackshift.schedules.create({ id: 'on-demand', cron: '0 0 1 1 *', job: 'nobody', queue: 'trigger', paused: true })
    const before = Date.now()
    const run = await env.stackshift.schedules.trigger('on-demand')
    expect(run).toMatchObject({ scheduleId: 'on-demand', status: 'queued', queue: 'trigger', job: 'nobody' })
    expect(run.scheduledAt!.getTime()).toBeGreaterThanOrEqual(before - 5)
    expect(await runsOf('on-demand')).toHaveLength(1)
  })
})

describe('overlap with a job slower than its period', () => {
  /** A job that holds every run until released (or cancelled). */
  function slowJob(name: string): { release: () => void; started: string[]; aborted: string[] } {
    const started: string[] = []
    const aborted: string[] = []
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    env.stackshift.job(name, async ({ run, signal }) => {
      started.push(run.id)
      await Promise.race([released, new Promise((resolve) => signal.addEventListener('abort', resolve))])
      if (signal.aborted) aborted.push(run.id)
    })
    return { release, started, aborted }
  }

  /** Waits until the schedule handled at least `ticks` ticks after its first run's. */
  async function ticksPass(id: string, ticks: number): Promise<void> {
    const first = (await runsOf(id))[0]!.scheduled_at.getTime()
    await waitUntil(
      () => env.stackshift.schedules.get(id),
      (schedule) => (schedule.lastTickAt?.getTime() ?? 0) >= first + ticks * 1000,
    )
  }

  it('skip: no second run while the first is unfinished', async () => {
    const job = slowJob('slowSkip')
    await env.startWorker({ queues: ['overlap-skip'], jobs: ['slowSkip'], concurrency: 5 })
    await env.stackshift.schedules.create({ id: 'skip', cron: '* * * * * *', queue: 'overlap-skip', job: 'slowSkip', overlap: 'skip' })
    await waitUntil(
      () => job.started.length,
      (n) => n === 1,
    )
    await ticksPass('skip', 3)
    expect(await runsOf('skip')).toHaveLength(1)
    job.release()
    await waitUntil(
      () => runsOf('skip'),
      (runs) => runs.length >= 2,
    )
    await env.stackshift.schedules.delete('skip')
  })

  it('buffer_one: one tick waits for the running run and fires when it ends', async () => {
    const job = slowJob('slowBuffer')
    await env.startWorker({ queues: ['overlap-buffer'], jobs: ['slowBuffer'], concurrency: 5 })
    await env.stackshift.schedules.create({
      id: 'buffer',
      cron: '* * * * * *',
      queue: 'overlap-buffer',
      job: 'slowBuffer',
      overlap: 'buffer_one',
    })
    await waitUntil(
      () => job.started.length,
      (n) => n === 1,
    )
    await ticksPass('buffer', 3)
    const waiting = await env.stackshift.schedules.get('buffer')
    expect(await runsOf('buffer')).toHaveLength(1)
    const first = (await runsOf('buffer'))[0]!.scheduled_at.getTime()
    // The tick right after the first run's is the one kept; later ones were dropped.
    expect(waiting.bufferedTickAt?.getTime()).toBe(first + 1000)
    job.release()
    const runs = await waitUntil(
      () => runsOf('buffer'),
      (found) => found.length >= 2,
    )
    await env.stackshift.schedules.delete('buffer')
    expect(runs[1]!.scheduled_at.getTime()).toBe(first + 1000)
  })

  it('allow: runs of the schedule run side by side', async () => {
    const job = slowJob('slowAllow')
    await env.startWorker({ queues: ['overlap-allow'], jobs: ['slowAllow'], concurrency: 10 })
    await env.stackshift.schedules.create({ id: 'allow', cron: '* * * * * *', queue: 'overlap-allow', job: 'slowAllow', overlap: 'allow' })
    await waitUntil(
      () => job.started.length,
      (n) => n >= 3,
    )
    await env.stackshift.schedules.delete('allow')
    expect((await runsOf('allow')).filter((run) => run.status === 'running').length).toBeGreaterThanOrEqual(3)
    job.release()
  })

  it('cancel_previous: a new tick cancels the running run, whose handler is told, and fires', async () => {
    const job = slowJob('slowCancel')
    await env.startWorker({ queues: ['overlap-cancel'], jobs: ['slowCancel'], concurrency: 5 })
    await env.stackshift.schedules.create({
      id: 'cancel',
      cron: '* * * * * *',
      queue: 'overlap-cancel',
      job: 'slowCancel',
      overlap: 'cancel_previous',
    })
    await waitUntil(
      () => job.aborted.length,
      (n) => n >= 1,
    )
    await env.stackshift.schedules.delete('cancel')
    const runs = await runsOf('cancel')
    expect(runs[0]).toMatchObject({ id: job.aborted[0], status: 'cancelled' })
    // At most one run is unfinished at a time.
    await waitUntil(
      () => runsOf('cancel'),
      (found) => found.filter((run) => ['queued', 'running'].includes(run.status)).length <= 1,
    )
    job.release()
  })
})
