import type { BulkActionKind, BulkActionRecord, RunSelection } from '../../core/bulk-action.js'
import type { RunRecord, RunStatus } from '../../core/run.js'
import { type Executor, sql, sqlPlannedEachTime } from '../database.js'
import { countRunsSql, newestRunsSql } from './run-filters.js'
import { type RunRow, runColumns, toRunRecord } from './run-record.js'

/** A selection as stored (JSON). */
interface StoredSelection {
  queue?: string
  job?: string
  status?: RunStatus
  createdAfter?: string
  createdBefore?: string
  payloadMatchJson?: string
}

interface BulkActionRow {
  id: string
  namespace: string
  kind: BulkActionKind
  selection: StoredSelection
  from_step_id: string
  status: 'running' | 'completed'
  id_ceiling: string
  cursor: string | null
  handled: string
  skipped: string
  created_at: Date
  updated_at: Date
  finished_at: Date | null
}

const columns = `id::text AS id, namespace, kind, selection, from_step_id, status, id_ceiling::text AS id_ceiling, cursor::text AS cursor,
  handled, skipped, created_at, updated_at, finished_at`

function toStoredSelection(selection: RunSelection): StoredSelection {
  return {
    queue: selection.queue,
    job: selection.job,
    status: selection.status,
    createdAfter: selection.createdAfter?.toISOString(),
    createdBefore: selection.createdBefore?.toISOString(),
    payloadMatchJson: selection.payloadMatchJson,
  }
}

function toRecord(row: BulkActionRow): BulkActionRecord {
  const stored = row.selection
  return {
    id: row.id,
    namespace: row.namespace,
    kind: row.kind,
    selection: {
      queue: stored.queue,
      job: stored.job,
      status: stored.status,
      createdAfter: stored.createdAfter === undefined ? undefined : new Date(stored.createdAfter),
      createdBefore: stored.createdBefore === undefined ? undefined : new Date(stored.createdBefore),
      payloadMatchJson: stored.payloadMatchJson,
    },
    fromStepId: row.from_step_id,
    status: row.status,
    idCeiling: row.id_ceiling,
    cursor: row.cursor ?? undefined,
    handled: Number(row.handled),
    skipped: Number(row.skipped),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at ?? undefined,
  }
}

export async function bulkActionInsert(
  db: Executor,
  params: { id: string; namespace: string; kind: BulkActionKind; selection: RunSelection; fromStepId: string; idCeiling: string },
): Promise<BulkActionRecord> {
  const rows = await sql<BulkActionRow>(
    db,
    `INSERT INTO stackshift.bulk_actions (id, namespace, kind, selection, from_step_id, status, id_ceiling)
     VALUES ($1::uuid, $2, $3, $4::jsonb, $5, 'running', $6::uuid)
     RETURNING ${columns}`,
    [params.id, params.namespace, params.kind, JSON.stringify(toStoredSelection(params.selection)), params.fromStepId, params.idCeiling],
  )
  return toRecord(rows[0]!)
}

export async function bulkActionGet(db: Executor, params: { namespace: string; id: string }): Promise<BulkActionRecord | undefined> {
  const rows = await sql<BulkActionRow>(db, `SELECT ${columns} FROM stackshift.bulk_actions WHERE namespace = $1 AND id = $2::uuid`, [
    params.namespace,
    params.id,
  ])
  return rows[0] && toRecord(rows[0])
}

/** A namespace's bulk actions, newest first. */
export async function bulkActionList(db: Executor, params: { namespace: string; limit: number }): Promise<BulkActionRecord[]> {
  const rows = await sql<BulkActionRow>(
    db,
    `SELECT ${columns} FROM stackshift.bulk_actions WHERE namespace = $1 ORDER BY created_at DESC, id DESC LIMIT $2`,
    [params.namespace, params.limit],
  )
  return rows.map(toRecord)
}

/**
 * Takes the oldest running action that no server works on (never taken, or
 * its taker's lease ran out: that server stopped), leased to the caller for
 * `leaseMs`. Undefined when there is none.
 */
export async function bulkActionTake(db: Executor, params: { leaseMs: number }): Promise<BulkActionRecord | undefined> {
  const rows = await sql<BulkActionRow>(
    db,
    `UPDATE stackshift.bulk_actions SET lease_expires_at = now() + $1 * interval '1 millisecond'
     WHERE id = (
       SELECT id FROM stackshift.bulk_actions
       WHERE status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < now())
       ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED
     )
     RETURNING ${columns}`,
    [params.leaseMs],
  )
  return rows[0] && toRecord(rows[0])
}

/**
 * Locks a running action for its next batch, if it is where its taker left
 * it: a taker whose lease ran out and whose action another server carried on
 * finds the cursor moved, and stops.
 */
export async function bulkActionLockAt(db: Executor, params: { id: string; cursor: string | undefined }): Promise<boolean> {
  const rows = await sql<{ id: string }>(
    db,
    `SELECT id::text AS id FROM stackshift.bulk_actions
     WHERE id = $1::uuid AND status = 'running' AND cursor IS NOT DISTINCT FROM $2::uuid FOR UPDATE`,
    [params.id, params.cursor ?? null],
  )
  return rows.length > 0
}

/** Records a batch: the new cursor and counts, the lease renewed, or the action finished. */
export async function bulkActionAdvance(
  db: Executor,
  params: { id: string; cursor: string | undefined; handled: number; skipped: number; isFinished: boolean; leaseMs: number },
): Promise<void> {
  await sql(
    db,
    `UPDATE stackshift.bulk_actions
     SET cursor = coalesce($2::uuid, cursor), handled = handled + $3, skipped = skipped + $4, updated_at = now(),
       status = CASE WHEN $5 THEN 'completed' ELSE status END,
       finished_at = CASE WHEN $5 THEN now() END,
       lease_expires_at = CASE WHEN $5 THEN NULL ELSE now() + $6 * interval '1 millisecond' END
     WHERE id = $1::uuid`,
    [params.id, params.cursor ?? null, params.handled, params.skipped, params.isFinished, params.leaseMs],
  )
}

/** The next runs of a selection, newest first, below `idBelow`. */
export async function runSelectBatch(
  db: Executor,
  params: { namespace: string; selection: RunSelection; idBelow: string; limit: number },
): Promise<RunRecord[]> {
  const values: unknown[] = []
  const text = newestRunsSql(
    runColumns,
    { namespace: params.namespace, ...params.selection, idBelow: params.idBelow },
    values,
    params.limit,
  )
  return (await sqlPlannedEachTime<RunRow>(db, text, values)).map(toRunRecord)
}

/**
 * How many runs a selection holds below `idBelow`, and of those how many an
 * action would skip: finished runs for a cancel, runs without the step for
 * a replay (from a step), none for a rerun.
 */
export async function runCountSelection(
  db: Executor,
  params: { namespace: string; selection: RunSelection; idBelow: string; kind: BulkActionKind; fromStepId: string },
): Promise<{ matched: number; skipped: number }> {
  const values: unknown[] = []
  let skippedWhen = 'false'
  if (params.kind === 'cancel') skippedWhen = 'finished_at IS NOT NULL'
  if (params.kind === 'replay' && params.fromStepId !== '') {
    values.push(params.fromStepId)
    skippedWhen = `NOT EXISTS (SELECT 1 FROM stackshift.steps AS s WHERE s.run_id = stackshift.runs.id AND s.step_id = $${values.length})`
  }
  const text = countRunsSql({ namespace: params.namespace, ...params.selection, idBelow: params.idBelow }, values, skippedWhen)
  const rows = await sqlPlannedEachTime<{ matched: string | null; skipped: string | null }>(db, text, values)
  return { matched: Number(rows[0]?.matched ?? 0), skipped: Number(rows[0]?.skipped ?? 0) }
}
