import type { RunSelection } from '@stackshift/proto/operator-service'
import { RunStatus, runStatusFromJSON } from '@stackshift/proto/run'
import type { ListRunsRequest } from '@stackshift/proto/run-service'

/** The runs list's filter, as it stands in the page's URL query. */
export interface RunFilter {
  queue: string
  job: string
  /** `queued`, `failed` ... or empty for any. */
  status: string
  /** `15m`, `1h`, `24h`, `7d`, `custom`, or empty for any time. */
  range: string
  /** For `custom`: `datetime-local` values. */
  after: string
  before: string
  runId: string
  idempotencyKey: string
  payloadMatch: string
  sourceRunId: string
  parentRunId: string
}

export const emptyFilter: RunFilter = {
  queue: '',
  job: '',
  status: '',
  range: '',
  after: '',
  before: '',
  runId: '',
  idempotencyKey: '',
  payloadMatch: '',
  sourceRunId: '',
  parentRunId: '',
}

export const rangeOptions: Array<{ value: string; label: string; ms: number }> = [
  { value: '15m', label: 'Last 15 minutes', ms: 15 * 60_000 },
  { value: '1h', label: 'Last hour', ms: 3_600_000 },
  { value: '24h', label: 'Last 24 hours', ms: 86_400_000 },
  { value: '7d', label: 'Last 7 days', ms: 7 * 86_400_000 },
]

const queryNames: Record<keyof RunFilter, string> = {
  queue: 'queue',
  job: 'job',
  status: 'status',
  range: 'range',
  after: 'after',
  before: 'before',
  runId: 'run',
  idempotencyKey: 'key',
  payloadMatch: 'payload',
  sourceRunId: 'source',
  parentRunId: 'parent',
}

export function filterFromQuery(query: URLSearchParams): RunFilter {
  const filter = { ...emptyFilter }
  for (const name of Object.keys(queryNames) as Array<keyof RunFilter>) filter[name] = query.get(queryNames[name]) ?? ''
  return filter
}

export function filterToQuery(filter: RunFilter): Record<string, string> {
  const query: Record<string, string> = {}
  for (const name of Object.keys(queryNames) as Array<keyof RunFilter>) if (filter[name]) query[queryNames[name]] = filter[name]
  return query
}

/** Why the payload match is not a JSON object, if it is not. */
export function payloadMatchProblem(text: string): string | undefined {
  if (!text.trim()) return undefined
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? undefined
      : 'must be a JSON object, such as {"customerId": 42}'
  } catch {
    return 'is not JSON'
  }
}

/** The filter's time range as instants; `now` anchors the relative ranges. */
function createdBounds(filter: RunFilter, now: number): { createdAfter: Date | undefined; createdBefore: Date | undefined } {
  const relative = rangeOptions.find((option) => option.value === filter.range)
  if (relative) return { createdAfter: new Date(now - relative.ms), createdBefore: undefined }
  if (filter.range !== 'custom') return { createdAfter: undefined, createdBefore: undefined }
  const instant = (value: string) => (value && !Number.isNaN(new Date(value).getTime()) ? new Date(value) : undefined)
  return { createdAfter: instant(filter.after), createdBefore: instant(filter.before) }
}

function statusOf(filter: RunFilter): RunStatus {
  return filter.status ? runStatusFromJSON(`RUN_STATUS_${filter.status.toUpperCase()}`) : RunStatus.RUN_STATUS_UNSPECIFIED
}

/** The ListRuns request for a filter. */
export function listRunsRequest(filter: RunFilter, now: number): Partial<ListRunsRequest> {
  return {
    queue: filter.queue.trim(),
    job: filter.job.trim(),
    status: statusOf(filter),
    ...createdBounds(filter, now),
    runId: filter.runId.trim(),
    idempotencyKey: filter.idempotencyKey.trim(),
    payloadMatchJson: payloadMatchProblem(filter.payloadMatch) === undefined ? filter.payloadMatch.trim() : '',
    sourceRunId: filter.sourceRunId.trim(),
    parentRunId: filter.parentRunId.trim(),
  }
}

/** The bulk-action selection for a filter: the same runs, where RunSelection has the fields. */
export function runSelection(filter: RunFilter, now: number): RunSelection {
  return {
    queue: filter.queue.trim(),
    job: filter.job.trim(),
    status: statusOf(filter),
    ...createdBounds(filter, now),
    payloadMatchJson: payloadMatchProblem(filter.payloadMatch) === undefined ? filter.payloadMatch.trim() : '',
  }
}

/** Filters a bulk action cannot apply (RunSelection has no such field). */
export function filtersBulkIgnores(filter: RunFilter): string[] {
  return [
    filter.runId && 'run id',
    filter.idempotencyKey && 'idempotency key',
    filter.sourceRunId && 'source run',
    filter.parentRunId && 'parent run',
  ].filter((name): name is string => Boolean(name))
}
