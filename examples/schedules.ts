import { StackShift } from '@stackshift/sdk'

const stackshift = new StackShift({ address: process.env.STACKSHIFT_ADDRESS ?? 'localhost:50051' })

stackshift.job<{ kind: string }>('buildReport', ({ payload, run }) => {
  // run.scheduledAt is the tick the run is for (02:00 in Paris), whenever it started.
  return { kind: payload.kind, for: run.scheduledAt?.toISOString() }
})
const worker = stackshift.worker({ queues: ['reports'] })
await worker.start()

const schedule = await stackshift.schedules.create({
  id: 'nightly-report', cron: '0 2 * * *', timezone: 'Europe/Paris',
  queue: 'reports', job: 'buildReport', payload: { kind: 'daily' },
  overlap: 'skip',          // 'skip' | 'buffer_one' | 'allow' | 'cancel_previous'
  catchupWindow: '1h',      // ticks missed while no server ran still fire if newer than this
})
console.log(schedule.nextFireTimes.length, 'fire times ahead') // 5 fire times ahead

const now = await stackshift.schedules.trigger('nightly-report') // one run now
console.log('triggered', (await stackshift.waitForRun(now.id)).status) // triggered completed

const week = { from: new Date(Date.now() - 7 * 86_400_000), to: new Date() }
const backfilled = await stackshift.schedules.backfill('nightly-report', week) // a run per tick of the week
await stackshift.schedules.backfill('nightly-report', week) // again: each tick already has its run
console.log('backfilled', backfilled.fired > 0) // backfilled true

await stackshift.schedules.pause('nightly-report')
await stackshift.schedules.resume('nightly-report')
const [listed] = await stackshift.schedules.list()
console.log(listed?.id, listed?.recentRuns.length) // nightly-report 5
await stackshift.schedules.delete('nightly-report') // its runs stay

await worker.stop()
stackshift.close()
