import type { ListRunsOptions, RunStatus } from '@stackshift/sdk'
import type { Arguments } from '../arguments.js'

/* The options that select runs, shared by `runs list` and `runs bulk`. */

const runStatuses: readonly RunStatus[] = ['queued', 'running', 'waiting', 'completed', 'failed', 'cancelled']

/** Filters both `runs list` and a bulk action take. */
export const selectionOptions = {
  queue: 'only runs of this queue',
  job: 'only runs of this job',
  status: `only runs with this status: ${runStatuses.join(', ')}`,
  'created-after': 'only runs created at or after this time (ISO 8601, or a duration ago: 30m, 2d)',
  'created-before': 'only runs created before this time (as --created-after)',
  'payload-match': `only runs whose payload contains this JSON object, e.g. '{"customer":{"id":"c_1"}}'`,
} as const

/** Filters only `runs list` takes. */
export const lookupOptions = {
  'run-id': 'only the run with this id',
  'idempotency-key': 'only the run holding this idempotency key',
  'source-run': 'only runs rerun or replayed from this run',
  'parent-run': 'only the child runs (step.invoke) of this run',
} as const

/** What `selectionOptions` select, as the SDK takes it. */
export function readSelection(args: Arguments, now: Date): Pick<ListRunsOptions, SelectionField> {
  return {
    queue: args.string('queue'),
    job: args.string('job'),
    status: args.choice('status', runStatuses),
    createdAfter: args.instant('created-after', now),
    createdBefore: args.instant('created-before', now),
    payloadMatch: args.jsonObject('payload-match'),
  }
}

type SelectionField = 'queue' | 'job' | 'status' | 'createdAfter' | 'createdBefore' | 'payloadMatch'

/** Whether any selection option was given: a bulk action over a whole namespace must be asked for with --all. */
export function hasSelection(args: Arguments): boolean {
  return Object.keys(selectionOptions).some((name) => args.string(name as keyof typeof selectionOptions) !== undefined)
}
