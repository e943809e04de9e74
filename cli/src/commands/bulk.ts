import type { BulkAction, StackShift } from '@stackshift/sdk'
import type { Command, CommandContext } from '../command.js'
import { formatDurationMs } from '../durations.js'
import { formatInstant } from '../format.js'
import { renderColumns, renderTable } from '../table.js'
import { hasSelection, readSelection, selectionOptions } from './run-filters.js'

/*
 * `stackshift runs bulk cancel|rerun|replay|show|list`: one action on every
 * run a filter selects, carried out by the server in batches.
 */

type BulkActionKind = BulkAction['action']

/** How often --wait asks the server how far the action is. */
const pollIntervalMs = 500

/** The selection as the options that make it, so it can be pasted back into `runs list`. */
function describeSelection(action: BulkAction): string {
  const { queue, job, status, createdAfter, createdBefore, payloadMatch } = action.selection
  const parts = [
    queue === undefined ? '' : `--queue ${queue}`,
    job === undefined ? '' : `--job ${job}`,
    status === undefined ? '' : `--status ${status}`,
    createdAfter === undefined ? '' : `--created-after ${formatInstant(createdAfter)}`,
    createdBefore === undefined ? '' : `--created-before ${formatInstant(createdBefore)}`,
    payloadMatch === undefined ? '' : `--payload-match '${JSON.stringify(payloadMatch)}'`,
  ].filter((part) => part !== '')
  return parts.length === 0 ? 'every run' : parts.join(' ')
}

function describeProgress(action: BulkAction): string {
  return `${action.handled} handled, ${action.skipped} skipped`
}

/** Polls until the action completes, telling a person each change. */
async function waitForCompletion(stackshift: StackShift, started: BulkAction, note: CommandContext['note']): Promise<BulkAction> {
  let action = started
  let reported = ''
  while (action.status !== 'completed') {
    const progress = describeProgress(action)
    if (progress !== reported) note(`${action.action} ${action.id}: ${progress} so far`)
    reported = progress
    await new Promise((resolve) => setTimeout(resolve, pollIntervalMs))
    action = await stackshift.getBulkAction(action.id)
  }
  return action
}

function bulkCommand(kind: BulkActionKind, summary: string): Command {
  const actionOptions = kind === 'replay' ? { 'from-step': 'the step each run executes from (default: the start)' } : {}
  return {
    words: ['runs', 'bulk', kind],
    operands: [],
    summary,
    options: {
      ...selectionOptions,
      all: 'select every run of the namespace (needed when no filter is given)',
      ...actionOptions,
      'dry-run': 'only count the runs the action would handle and skip; change nothing',
      wait: 'wait until the server has handled every run, printing progress',
    },
    async run({ args, client, note }) {
      args.expectOperands([])
      if (!hasSelection(args) && !args.flag('all'))
        throw args.usageError(`${args.command} needs a filter (--queue, --job, --status, ...), or --all for every run of the namespace`)
      const isDryRun = args.flag('dry-run')
      if (isDryRun && args.flag('wait')) throw args.usageError('--dry-run changes nothing, so there is nothing to --wait for')
      const fromStep = args.string('from-step')
      const start = await client().startBulkAction({
        action: kind,
        selection: readSelection(args, new Date()),
        dryRun: isDryRun,
        ...(fromStep === undefined ? {} : { fromStep }),
      })
      // `skipped` is part of `matched`: selected runs the action leaves alone (a finished run for a cancel).
      const counts = `of ${start.matched} selected run(s), ${start.matched - start.skipped} to ${kind} and ${start.skipped} to skip`
      if (start.action === undefined) return { json: { dryRun: true, ...start }, text: `dry run: ${counts}; nothing changed` }
      note(`${kind} ${start.action.id} started: ${counts}`)
      if (!args.flag('wait')) {
        note(`follow it with: stackshift runs bulk show ${start.action.id}`)
        return { json: { dryRun: false, ...start }, text: start.action.id }
      }
      const action = await waitForCompletion(client(), start.action, note)
      const tookMs = (action.finishedAt ?? action.updatedAt).getTime() - action.createdAt.getTime()
      return {
        json: { dryRun: false, matched: start.matched, skipped: start.skipped, action },
        text: `${kind} ${action.id} completed in ${formatDurationMs(tookMs)}: ${describeProgress(action)}`,
      }
    },
  }
}

const show: Command = {
  words: ['runs', 'bulk', 'show'],
  operands: ['<id>'],
  summary: 'show a bulk action and its progress',
  options: {},
  async run({ args, client }) {
    const [id] = args.expectOperands(['<id>'])
    const action = await client().getBulkAction(id!)
    const fields: Array<[string, string]> = [
      ['bulk action', action.id],
      ['action', action.action + (action.fromStep === undefined ? '' : ` from step ${action.fromStep}`)],
      ['selection', describeSelection(action)],
      ['status', action.status],
      ['handled', String(action.handled)],
      ['skipped', String(action.skipped)],
      ['created', formatInstant(action.createdAt)],
      ['updated', formatInstant(action.updatedAt)],
      ['finished', formatInstant(action.finishedAt)],
    ]
    return { json: action, text: renderColumns(fields) }
  },
}

const list: Command = {
  words: ['runs', 'bulk', 'list'],
  operands: [],
  summary: 'list bulk actions, newest first',
  options: { limit: 'how many, 1 to 500 (default 50)' },
  async run({ args, client }) {
    args.expectOperands([])
    const limit = args.integer('limit', 1, 500)
    const actions = await client().listBulkActions(limit === undefined ? {} : { limit })
    const rows = actions.map((action) => [
      action.id,
      action.action,
      action.status,
      String(action.handled),
      String(action.skipped),
      formatInstant(action.createdAt),
      describeSelection(action),
    ])
    return { json: { actions }, text: renderTable(['ID', 'ACTION', 'STATUS', 'HANDLED', 'SKIPPED', 'CREATED', 'SELECTION'], rows) }
  },
}

export const bulkCommands: readonly Command[] = [
  bulkCommand('cancel', 'cancel every unfinished run a filter selects (finished ones are skipped)'),
  bulkCommand('rerun', 'rerun every run a filter selects, each with its own payload'),
  bulkCommand('replay', 'replay every run a filter selects from --from-step (runs without that step are skipped)'),
  show,
  list,
]
