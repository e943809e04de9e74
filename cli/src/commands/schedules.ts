import type { OverlapPolicy, Schedule } from '@stackshift/sdk'
import type { Command } from '../command.js'
import { formatDurationMs } from '../durations.js'
import { formatInstant, formatJsonBrief } from '../format.js'
import { renderTable } from '../table.js'

/* `stackshift schedules list|get|create|pause|resume|trigger|backfill|delete`: runs enqueued on a cron expression. */

const overlapPolicies: readonly OverlapPolicy[] = ['skip', 'buffer_one', 'allow', 'cancel_previous']

function summaryRow(schedule: Schedule): string[] {
  return [
    schedule.id,
    schedule.cron,
    schedule.timezone,
    `${schedule.queue}/${schedule.job}`,
    schedule.paused ? 'paused' : 'active',
    formatInstant(schedule.nextFireTimes[0]),
    schedule.recentRuns[0] ? `${schedule.recentRuns[0].status} ${formatInstant(schedule.recentRuns[0].scheduledAt)}` : '-',
  ]
}

const summaryHeadings = ['ID', 'CRON', 'ZONE', 'QUEUE/JOB', 'STATE', 'NEXT', 'LAST RUN']

/** A schedule for people: its definition, next fire times and last runs. */
function describeSchedule(schedule: Schedule): string {
  const lines = [
    `schedule ${schedule.id}: ${schedule.paused ? 'paused' : 'active'}`,
    `  cron:           ${schedule.cron} (${schedule.timezone})`,
    `  runs:           ${schedule.job} on ${schedule.queue}, payload ${formatJsonBrief(schedule.payload)}`,
    `  overlap:        ${schedule.overlap}`,
    `  catch-up:       ${formatDurationMs(schedule.catchupWindowMs)}`,
    `  last tick:      ${formatInstant(schedule.lastTickAt)}`,
  ]
  if (schedule.bufferedTickAt) lines.push(`  buffered tick:  ${formatInstant(schedule.bufferedTickAt)}`)
  lines.push('  next fire times:', ...schedule.nextFireTimes.map((tick) => `    ${formatInstant(tick)}`))
  lines.push(
    '  last runs:',
    ...(schedule.recentRuns.length === 0
      ? ['    none']
      : schedule.recentRuns.map((run) => `    ${formatInstant(run.scheduledAt)}  ${run.status.padEnd(9)}  ${run.runId}`)),
  )
  return lines.join('\n')
}

const list: Command = {
  words: ['schedules', 'list'],
  operands: [],
  summary: "list the namespace's schedules with their next fire time and last run",
  options: {},
  async run({ args, client }) {
    args.expectOperands([])
    const schedules = await client().schedules.list()
    return { json: { schedules }, text: renderTable(summaryHeadings, schedules.map(summaryRow)) }
  },
}

const get: Command = {
  words: ['schedules', 'get'],
  operands: ['<id>'],
  summary: 'show a schedule, its next five fire times and its last five runs',
  options: {},
  async run({ args, client }) {
    const [id] = args.expectOperands(['<id>'])
    const schedule = await client().schedules.get(id!)
    return { json: schedule, text: describeSchedule(schedule) }
  },
}

const create: Command = {
  words: ['schedules', 'create'],
  operands: ['<id>'],
  summary: 'create a schedule, or redefine the one with this id (its paused state and runs are kept)',
  options: {
    cron: 'five fields (minute hour day month weekday) or six (seconds first), e.g. "0 2 * * *"',
    timezone: 'the IANA time zone the expression is read in, e.g. Europe/Paris (default UTC)',
    queue: 'queue of the runs (default "default")',
    job: 'job of the runs',
    payload: 'payload of every run as JSON (default null)',
    overlap: `what a tick does while a run of the schedule is unfinished: ${overlapPolicies.join(', ')} (default skip)`,
    'catchup-window': 'missed ticks still fire when at most this old (default 1d; 10s to 365d)',
    paused: 'create it paused',
  },
  async run({ args, client }) {
    const [id] = args.expectOperands(['<id>'])
    const cron = args.required('cron', 'a schedule needs its cron expression')
    const job = args.required('job', 'a schedule needs the job its runs execute')
    const catchupWindowMs = args.durationMs('catchup-window')
    const schedule = await client().schedules.create({
      id: id!,
      cron,
      job,
      timezone: args.string('timezone'),
      queue: args.string('queue'),
      payload: args.json('payload'),
      overlap: args.choice('overlap', overlapPolicies),
      catchupWindow: catchupWindowMs,
      paused: args.flag('paused'),
    })
    return { json: schedule, text: describeSchedule(schedule) }
  },
}

const pause: Command = {
  words: ['schedules', 'pause'],
  operands: ['<id>'],
  summary: 'stop a schedule firing (ticks that pass while it is paused never fire)',
  options: {},
  async run({ args, client }) {
    const [id] = args.expectOperands(['<id>'])
    const schedule = await client().schedules.pause(id!)
    return { json: schedule, text: `paused schedule ${schedule.id}` }
  },
}

const resume: Command = {
  words: ['schedules', 'resume'],
  operands: ['<id>'],
  summary: 'make a paused schedule fire again, from its next tick',
  options: {},
  async run({ args, client }) {
    const [id] = args.expectOperands(['<id>'])
    const schedule = await client().schedules.resume(id!)
    return { json: schedule, text: `resumed schedule ${schedule.id}; next fire time ${formatInstant(schedule.nextFireTimes[0])}` }
  },
}

const trigger: Command = {
  words: ['schedules', 'trigger'],
  operands: ['<id>'],
  summary: 'fire one run of a schedule now, paused or not',
  options: {},
  async run({ args, client }) {
    const [id] = args.expectOperands(['<id>'])
    const run = await client().schedules.trigger(id!)
    return { json: run, text: `triggered schedule ${id!}: run ${run.id}` }
  },
}

const backfill: Command = {
  words: ['schedules', 'backfill'],
  operands: ['<id>'],
  summary: 'fire a run for every tick from --from (included) to --to (excluded) that has none yet',
  options: {
    from: 'the start of the range: a time (ISO 8601) or a duration ago (e.g. 1d)',
    to: 'the end of the range, excluded: a time or a duration ago (default now)',
  },
  async run({ args, client }) {
    const [id] = args.expectOperands(['<id>'])
    args.required('from', 'a backfill needs the start of its range')
    const now = new Date()
    const from = args.instant('from', now)!
    const to = args.instant('to', now) ?? now
    const outcome = await client().schedules.backfill(id!, { from, to })
    return {
      json: { id: id!, from, to, ...outcome },
      text: `backfilled schedule ${id!}: ${outcome.fired} run(s) fired, ${outcome.existing} tick(s) already had one`,
    }
  },
}

const remove: Command = {
  words: ['schedules', 'delete'],
  operands: ['<id>'],
  summary: 'delete a schedule (its runs stay)',
  options: {},
  async run({ args, client }) {
    const [id] = args.expectOperands(['<id>'])
    await client().schedules.delete(id!)
    return { json: { id: id!, deleted: true }, text: `deleted schedule ${id!}` }
  },
}

export const scheduleCommands: readonly Command[] = [list, get, create, pause, resume, trigger, backfill, remove]
