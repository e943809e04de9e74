import type { RunStatus, StoredRunStatus } from '../../core/run.js'
import { runIdFloor } from '../../core/run-id.js'

/** What selects runs: ListRuns' filters, and a bulk action's selection. Unset fields match every run. */
export interface RunConditions {
  namespace: string
  runId?: string | undefined
  queue?: string | undefined
  job?: string | undefined
  status?: RunStatus | undefined
  createdAfter?: Date | undefined
  createdBefore?: Date | undefined
  idempotencyKey?: string | undefined
  /** JSON text of an object the payload must contain. */
  payloadMatchJson?: string | undefined
  sourceRunId?: string | undefined
  scheduleId?: string | undefined
  /** Only the child runs of this run (index runs_by_parent). */
  parentRunId?: string | undefined
  /** Only runs with ids below this one (a page's cursor, a bulk action's progress). */
  idBelow?: string | undefined
}

/** Written as ORs, each the predicate of a partial index: the planner can OR those indexes' bitmaps. */
const unfinishedStatuses = `(status = 'queued' OR status = 'scheduled' OR status = 'running' OR status = 'waiting')`

/** The statuses of a public status, as stored ('queued' includes runs waiting for a delay). */
const storedStatuses: Record<RunStatus, readonly StoredRunStatus[]> = {
  queued: ['queued', 'scheduled'],
  running: ['running'],
  waiting: ['waiting'],
  completed: ['completed'],
  failed: ['failed'],
  cancelled: ['cancelled'],
}

/**
 * The WHERE clause of a statement over stackshift.runs that names only the
 * conditions given, so the planner can match each to its index (the partial
 * ones of each status, runs_by_source; those of finished runs through
 * newestRunsSql; see migration 0010). Statuses are
 * literals from the fixed list above, never from the request, so that a
 * partial index matches; run ids sort by creation time, so a creation-time
 * range is an id range. Values go to `values` as parameters; the statement
 * should be planned for them each time (sqlPlannedEachTime): how many runs a
 * condition selects decides the plan.
 */
export function runConditionsSql(conditions: RunConditions, values: unknown[]): string {
  const parameter = (value: unknown) => {
    values.push(value)
    return `$${values.length}`
  }
  const clauses = [`namespace = ${parameter(conditions.namespace)}`]
  if (conditions.runId !== undefined) clauses.push(`id = ${parameter(conditions.runId)}::uuid`)
  if (conditions.queue !== undefined) clauses.push(`queue = ${parameter(conditions.queue)}`)
  if (conditions.job !== undefined) clauses.push(`job = ${parameter(conditions.job)}`)
  if (conditions.status !== undefined) {
    clauses.push(`(${storedStatuses[conditions.status].map((status) => `status = '${status}'`).join(' OR ')})`)
  }
  if (conditions.idempotencyKey !== undefined) clauses.push(`idempotency_key = ${parameter(conditions.idempotencyKey)}`)
  if (conditions.payloadMatchJson !== undefined) clauses.push(`payload @> ${parameter(conditions.payloadMatchJson)}::jsonb`)
  if (conditions.sourceRunId !== undefined) clauses.push(`source_run_id = ${parameter(conditions.sourceRunId)}::uuid`)
  if (conditions.scheduleId !== undefined) clauses.push(`schedule_id = ${parameter(conditions.scheduleId)}`)
  if (conditions.parentRunId !== undefined) clauses.push(`parent_run_id = ${parameter(conditions.parentRunId)}::uuid`)
  if (conditions.createdAfter !== undefined) {
    clauses.push(`id >= ${parameter(runIdFloor(conditions.createdAfter.getTime()))}::uuid`)
  }
  if (conditions.createdBefore !== undefined) {
    clauses.push(`id < ${parameter(runIdFloor(conditions.createdBefore.getTime()))}::uuid`)
  }
  if (conditions.idBelow !== undefined) clauses.push(`id < ${parameter(conditions.idBelow)}::uuid`)
  return clauses.join(' AND ')
}

/**
 * A statement for the newest runs (up to `limit`) that match `conditions`,
 * with `columns`. The indexes of queue, job and payload hold finished runs
 * only (migration 0010), so when one of those filters is given and no
 * status, the statement reads finished and unfinished runs apart and merges
 * the two:
 * - finished runs newest first through the index that fits, stopping at the
 *   limit;
 * - unfinished runs all, through the partial indexes of their statuses (as
 *   many as the backlog), then the newest. They are ordered by an
 *   expression no index holds (the id as text, in collation "C": for UUIDs
 *   their order) on purpose: ordered by id, the planner walks the primary
 *   key backwards hoping to meet `limit` matches soon, and when the
 *   unfinished runs that match are few or none it reads the whole table
 *   (450 ms on a million runs; docs/performance.md).
 * `columns` must select `id` as text.
 */
export function newestRunsSql(columns: string, conditions: RunConditions, values: unknown[], limit: number): string {
  const where = runConditionsSql(conditions, values)
  values.push(limit)
  const limitParameter = `$${values.length}`
  const finished = `SELECT ${columns} FROM stackshift.runs WHERE ${where} AND finished_at IS NOT NULL
    ORDER BY stackshift.runs.id DESC LIMIT ${limitParameter}`
  const unfinished = (extra: string) => `SELECT ${columns} FROM stackshift.runs WHERE ${where} AND ${extra}
    ORDER BY stackshift.runs.id::text COLLATE "C" DESC LIMIT ${limitParameter}`
  if (conditions.status !== undefined) {
    return storedStatuses[conditions.status].some((status) => finishedStored.has(status)) ? finished : unfinished('true')
  }
  // Without a filter that only finished runs are indexed by, any run may match: the primary key backwards finds them soonest.
  if (conditions.queue === undefined && conditions.job === undefined && conditions.payloadMatchJson === undefined) {
    return `SELECT ${columns} FROM stackshift.runs WHERE ${where} ORDER BY stackshift.runs.id DESC LIMIT ${limitParameter}`
  }
  return `SELECT * FROM ((${finished}) UNION ALL (${unfinished(unfinishedStatuses)})) AS runs
    ORDER BY id COLLATE "C" DESC LIMIT ${limitParameter}`
}

/**
 * How many runs match `conditions`, and how many of those also match
 * `skippedWhen` (SQL over the runs' columns), read as newestRunsSql reads them.
 */
export function countRunsSql(conditions: RunConditions, values: unknown[], skippedWhen: string): string {
  const where = runConditionsSql(conditions, values)
  const part = (extra: string) =>
    `SELECT count(*) AS matched, count(*) FILTER (WHERE ${skippedWhen}) AS skipped FROM stackshift.runs WHERE ${where} AND ${extra}`
  if (conditions.status !== undefined) {
    return part(storedStatuses[conditions.status].some((status) => finishedStored.has(status)) ? 'finished_at IS NOT NULL' : 'true')
  }
  return `SELECT sum(matched) AS matched, sum(skipped) AS skipped FROM ((${part('finished_at IS NOT NULL')}) UNION ALL (${part(unfinishedStatuses)})) AS counts`
}

const finishedStored: ReadonlySet<StoredRunStatus> = new Set(['completed', 'failed', 'cancelled'])
