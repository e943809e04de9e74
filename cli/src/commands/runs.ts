import type { Run } from '@stackshift/sdk'
import type { Command } from '../command.js'
import { formatDurationMs } from '../durations.js'
import { formatInstant, formatJsonBrief } from '../format.js'
import { pagingOptions, readPages } from '../paging.js'
import { renderTimeline } from '../run-timeline.js'
import { renderColumns, renderTable } from '../table.js'
import { lookupOptions, readSelection, selectionOptions } from './run-filters.js'

/* `stackshift runs list|show|cancel|rerun|replay`: reading runs and acting on one. */

const maxPageSize = 500

/** How long the run took (creation to finish), or has taken so far. */
function age(run: Run, now: Date): string {
  if (!run.createdAt) return '-'
  return formatDurationMs((run.finishedAt ?? now).getTime() - run.createdAt.getTime())
}

/** Where the run came from, when an operator or another run made it. */
function describeOrigin(run: Run): string | undefined {
  if (run.parentRunId) return `child of ${run.parentRunId} (step ${run.parentStepId ?? ''})`
  if (run.rerunOf) return `rerun of ${run.rerunOf}`
  if (run.forkedFrom) return `replay of ${run.forkedFrom.runId} from step ${run.forkedFrom.stepId || '(the start)'}`
  return undefined
}

/** The table `runs list` prints. */
function renderRunTable(runs: readonly Run[], now: Date): string {
  return renderTable(
    ['ID', 'QUEUE', 'JOB', 'STATUS', 'ATTEMPTS', 'CREATED', 'TOOK', 'ORIGIN'],
    runs.map((run) => [
      run.id,
      run.queue,
      run.job,
      run.status,
      `${run.attempts}/${run.maxAttempts}`,
      formatInstant(run.createdAt),
      age(run, now),
      describeOrigin(run) ?? '',
    ]),
  )
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0]!
}

const list: Command = {
  words: ['runs', 'list'],
  operands: [],
  summary: 'list runs, newest first, by filter',
  options: { ...selectionOptions, ...lookupOptions, ...pagingOptions('runs', 50, maxPageSize) },
  async run({ args, client, note }) {
    args.expectOperands([])
    const now = new Date()
    const filters = {
      ...readSelection(args, now),
      runId: args.string('run-id'),
      idempotencyKey: args.string('idempotency-key'),
      sourceRunId: args.string('source-run'),
      parentRunId: args.string('parent-run'),
    }
    const page = await readPages(
      args,
      maxPageSize,
      async (limit, cursor) => {
        const { runs, nextCursor } = await client().listRuns({ ...filters, limit, cursor })
        return { items: runs, nextCursor }
      },
      note,
    )
    return { json: { runs: page.items, nextCursor: page.nextCursor }, text: renderRunTable(page.items, now) }
  },
}

const show: Command = {
  words: ['runs', 'show'],
  operands: ['<id>'],
  summary: "show a run's fields, and its attempts and steps as a timeline",
  options: {},
  async run({ args, client }) {
    const [id] = args.expectOperands(['<id>'])
    const run = await client().getRun(id!)
    const now = new Date()
    const fields: Array<[string, string]> = [
      ['run', run.id],
      ['job', `${run.job} on queue ${run.queue}`],
      ['status', run.status],
      ['attempts', `${run.attempts} of ${run.maxAttempts}`],
      ['priority', String(run.priority)],
      ['created', formatInstant(run.createdAt)],
      ['available', formatInstant(run.availableAt)],
      ['started', formatInstant(run.startedAt)],
      ['finished', formatInstant(run.finishedAt)],
      ['took', age(run, now) + (run.finishedAt ? '' : ' so far')],
    ]
    const origin = describeOrigin(run)
    if (origin !== undefined) fields.push(['origin', origin])
    if (run.idempotencyKey !== undefined) fields.push(['idempotency key', run.idempotencyKey])
    fields.push(['payload', formatJsonBrief(run.payload, 200)])
    if (run.result !== undefined) fields.push(['result', formatJsonBrief(run.result, 200)])
    // A run that completed after a retry keeps the error of the attempt that failed before.
    if (run.error) fields.push([run.status === 'failed' ? 'error' : 'last error', `${run.error.name}: ${firstLine(run.error.message)}`])
    const children =
      run.children.length === 0
        ? ''
        : `\n\nchildren:\n${renderTable(
            ['ID', 'STEP', 'QUEUE', 'JOB', 'STATUS'],
            run.children.map((child) => [child.runId, child.stepId, child.queue, child.job, child.status]),
          )}`
    return { json: run, text: `${renderColumns(fields)}${children}\n\n${renderTimeline(run, now)}` }
  },
}

const cancel: Command = {
  words: ['runs', 'cancel'],
  operands: ['<id>'],
  summary: "cancel a run that has not finished (a running handler's signal aborts)",
  options: { reason: 'why, kept with the run' },
  async run({ args, client }) {
    const [id] = args.expectOperands(['<id>'])
    const run = await client().cancelRun(id!, { reason: args.string('reason') })
    return { json: run, text: `cancelled run ${run.id}` }
  },
}

const rerun: Command = {
  words: ['runs', 'rerun'],
  operands: ['<id>'],
  summary: 'enqueue a new run of the same job, queue and payload (or --payload); the run is untouched',
  options: { payload: "the new run's payload as JSON (default: the run's own)" },
  async run({ args, client }) {
    const [id] = args.expectOperands(['<id>'])
    const payload = args.json('payload')
    const run = await client().rerunRun(id!, payload === undefined ? {} : { payload })
    return { json: run, text: `rerun of ${id!}: run ${run.id} (${run.status})` }
  },
}

const replay: Command = {
  words: ['runs', 'replay'],
  operands: ['<id>'],
  summary: 'fork a run: a new run keeps the steps completed before --from-step and runs from it',
  options: { 'from-step': 'the step to execute from, as runs show names it (default: the start, keeping no step)' },
  async run({ args, client }) {
    const [id] = args.expectOperands(['<id>'])
    const fromStep = args.string('from-step')
    const run = await client().replayRun(id!, fromStep === undefined ? {} : { fromStep })
    return {
      json: run,
      text: `replay of ${id!} from ${fromStep === undefined ? 'the start' : `step ${fromStep}`}: run ${run.id} (${run.status})`,
    }
  },
}

export const runCommands: readonly Command[] = [list, show, cancel, rerun, replay]
