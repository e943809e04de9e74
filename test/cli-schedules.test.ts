import { afterAll, beforeAll, expect, it } from 'vitest'
import { type CliResult, runCli } from './support/cli.js'
import { createTestDatabase } from './support/database.js'
import { type TestServer, startTestServer } from './support/server.js'

/* `stackshift schedules ...`, run as a user runs it. */

let server: TestServer

beforeAll(async () => {
  server = await startTestServer(await createTestDatabase())
})

afterAll(async () => {
  await server.stop()
})

function stackshift(args: string[]): Promise<CliResult> {
  return runCli(args, { STACKSHIFT_ADDRESS: server.address })
}

async function json<T>(args: string[]): Promise<T> {
  const result = await stackshift([...args, '--json'])
  expect(result, `stackshift ${args.join(' ')}`).toMatchObject({ code: 0, stderr: '' })
  return JSON.parse(result.stdout) as T
}

interface ScheduleDocument {
  id: string
  cron: string
  timezone: string
  paused: boolean
  overlap: string
  catchupWindowMs: number
  nextFireTimes: string[]
  recentRuns: Array<{ runId: string; status: string; scheduledAt: string }>
}

it('creates, shows, pauses, resumes, triggers, backfills and deletes a schedule', async () => {
  const created = await json<ScheduleDocument>([
    ...['schedules', 'create', 'nightly', '--cron', '0 2 * * *', '--timezone', 'Europe/Paris', '--job', 'buildReport'],
    ...['--queue', 'reports', '--payload', '{"kind":"daily"}', '--overlap', 'buffer_one', '--catchup-window', '1h', '--paused'],
  ])
  expect(created).toMatchObject({
    id: 'nightly',
    timezone: 'Europe/Paris',
    paused: true,
    overlap: 'buffer_one',
    catchupWindowMs: 3_600_000,
  })
  expect(created.nextFireTimes).toHaveLength(5)

  const shown = await stackshift(['schedules', 'get', 'nightly'])
  expect(shown.code).toBe(0)
  expect(shown.stdout).toContain('schedule nightly: paused')
  expect(shown.stdout).toContain('0 2 * * * (Europe/Paris)')
  expect(shown.stdout).toContain('next fire times:')

  const listed = await stackshift(['schedules', 'list'])
  expect(listed.stdout).toMatch(/^ID\s+CRON\s+ZONE\s+QUEUE\/JOB\s+STATE\s+NEXT\s+LAST RUN/)
  expect(listed.stdout).toMatch(/nightly\s+0 2 \* \* \*\s+Europe\/Paris\s+reports\/buildReport\s+paused/)

  expect((await json<ScheduleDocument>(['schedules', 'resume', 'nightly'])).paused).toBe(false)
  expect((await stackshift(['schedules', 'pause', 'nightly'])).stdout).toBe('paused schedule nightly\n')

  const triggered = await json<{ id: string; scheduleId: string; scheduledAt: string }>(['schedules', 'trigger', 'nightly'])
  expect(triggered.scheduleId).toBe('nightly')

  const backfill = await json<{ fired: number; existing: number }>([
    ...['schedules', 'backfill', 'nightly', '--from', '2026-01-01T00:00:00Z', '--to', '2026-01-08T00:00:00Z'],
  ])
  expect(backfill).toMatchObject({ fired: 7, existing: 0 })
  const again = await stackshift(['schedules', 'backfill', 'nightly', '--from', '2026-01-01T00:00:00Z', '--to', '2026-01-08T00:00:00Z'])
  expect(again.stdout).toBe('backfilled schedule nightly: 0 run(s) fired, 7 tick(s) already had one\n')

  const withRuns = await json<ScheduleDocument>(['schedules', 'get', 'nightly'])
  expect(withRuns.recentRuns[0]!.runId).toBe(triggered.id)
  expect(withRuns.recentRuns).toHaveLength(5)

  expect(await json(['schedules', 'delete', 'nightly'])).toEqual({ id: 'nightly', deleted: true })
  const gone = await stackshift(['schedules', 'get', 'nightly'])
  expect(gone).toMatchObject({ code: 3, stdout: '' })
  expect(gone.stderr).toMatch(/^stackshift: NOT_FOUND: schedule nightly not found/)
})

it('reports a bad expression or zone with the field it is in, and a mistyped policy before calling', async () => {
  const badCron = await stackshift(['schedules', 'create', 'bad', '--cron', '0 25 * * *', '--job', 'j'])
  expect(badCron).toMatchObject({ code: 1, stdout: '' })
  expect(badCron.stderr).toMatch(/^stackshift: INVALID_ARGUMENT: schedule\.cron: /)
  const badZone = await stackshift(['schedules', 'create', 'bad', '--cron', '0 2 * * *', '--timezone', 'Paris', '--job', 'j'])
  expect(badZone.stderr).toMatch(/^stackshift: INVALID_ARGUMENT: schedule\.timezone: "Paris" is not a time zone/)
  const badPolicy = await stackshift(['schedules', 'create', 'bad', '--cron', '0 2 * * *', '--job', 'j', '--overlap', 'queue'])
  expect(badPolicy.code).toBe(2)
  expect(badPolicy.stderr).toContain('--overlap')
  expect((await json<{ schedules: unknown[] }>(['schedules', 'list'])).schedules).toEqual([])
})
