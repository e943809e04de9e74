import { runIdTime } from '../../core/run-id.js'
import type { ClaimedRun, TraceContext } from '../../core/run.js'
import { type Executor, sql } from '../database.js'

/** A row of claim_runs (db/functions/claim-runs.ts). */
interface ClaimedRow {
  run_id: string
  run_queue: string
  run_job: string
  payload_json: string
  run_attempt: number
  run_max_attempts: number
  run_priority: number
  run_lease_token: string
  lease_expires_ms: number
  available_ms: number
  memo: Array<[string, string | null]> | null
  trace_context: TraceContext | null
  is_cut: boolean
  run_schedule_id: string | null
  scheduled_ms: number | null
}

/** What a claim leased, in claim order. */
export interface ClaimedBatch {
  runs: ClaimedRun[]
  /** The byte budget, not the count, ended the claim: more runs may be ready. */
  isCutByBytes: boolean
}

/** Claim order: higher priority first, then the time the run became ready, then its id (as the ready index orders them). */
function compareClaimOrder(a: ClaimedRow, b: ClaimedRow): number {
  return b.run_priority - a.run_priority || a.available_ms - b.available_ms || (a.run_id < b.run_id ? -1 : a.run_id > b.run_id ? 1 : 0)
}

/**
 * Leases up to `limit` ready runs of the given queues and jobs, and no more
 * than `maxBytes` of payloads and memos (at least one run), and returns them
 * in claim order with the results of their completed steps (the memo).
 * The statement is the stored function claim_runs (db/functions/claim-runs.ts,
 * where the reasons for its shape are), which leaves the sort to this
 * function: it costs PostgreSQL less here. Instants come back as epoch
 * milliseconds, cheaper to read than timestamp text; the creation time is the
 * one in the run id.
 */
export async function runClaim(
  db: Executor,
  params: {
    namespace: string
    queues: readonly string[]
    jobs: readonly string[]
    limit: number
    maxBytes: number
    leaseMs: number
    workerId: string
  },
): Promise<ClaimedBatch> {
  const rows = await sql<ClaimedRow>(db, `SELECT * FROM stackshift.claim_runs($1, $2, $3, $4, $5, $6, $7)`, [
    params.namespace,
    params.queues,
    params.jobs,
    params.limit,
    params.leaseMs,
    params.workerId,
    params.maxBytes,
  ])
  const runs = rows.sort(compareClaimOrder).map((row) => toClaimedRun(params.namespace, row))
  return { runs, isCutByBytes: rows[0]?.is_cut ?? false }
}

function toClaimedRun(namespace: string, row: ClaimedRow): ClaimedRun {
  return {
    id: row.run_id,
    namespace,
    queue: row.run_queue,
    job: row.run_job,
    payloadJson: row.payload_json,
    attempt: row.run_attempt,
    maxAttempts: row.run_max_attempts,
    leaseToken: row.run_lease_token,
    leaseExpiresAt: new Date(row.lease_expires_ms),
    createdAt: new Date(runIdTime(row.run_id)),
    availableAt: new Date(row.available_ms),
    memo: (row.memo ?? []).map(([stepId, resultJson]) => ({ stepId, resultJson: resultJson ?? undefined })),
    traceContext: row.trace_context ?? undefined,
    schedule: row.run_schedule_id === null ? undefined : { id: row.run_schedule_id, scheduledAt: new Date(row.scheduled_ms!) },
  }
}

/** A row of claim_flow_runs (db/functions/claim-flow-runs.ts): a leased run, or (run_id null) only the limits' state. */
interface FlowClaimedRow extends Omit<ClaimedRow, 'run_id'> {
  run_id: string | null
  claim_order: string | null
  is_held: boolean
  opens_ms: number | null
}

/** What a flow claim leased, in the order it picked them, and what held the others back. */
export interface FlowClaimedBatch extends ClaimedBatch {
  /** A limit held ready runs back. */
  isHeld: boolean
  /** When a rate limit that held runs back next has room. */
  opensAt: Date | undefined
}

/**
 * Leases up to `limit` ready runs of one queue and job under flow control,
 * within the job's and the queue's limits, in the order the claim picked them
 * (round robin across keys). The statement is the stored function
 * claim_flow_runs (db/functions/claim-flow-runs.ts).
 */
export async function runFlowClaim(
  db: Executor,
  params: { namespace: string; queue: string; job: string; limit: number; maxBytes: number; leaseMs: number; workerId: string },
): Promise<FlowClaimedBatch> {
  const rows = await sql<FlowClaimedRow>(db, `SELECT * FROM stackshift.claim_flow_runs($1, $2, $3, $4, $5, $6, $7)`, [
    params.namespace,
    params.queue,
    params.job,
    params.limit,
    params.leaseMs,
    params.workerId,
    params.maxBytes,
  ])
  const first = rows[0]
  const leased = rows.filter((row): row is FlowClaimedRow & { run_id: string } => row.run_id !== null)
  leased.sort((a, b) => Number(a.claim_order) - Number(b.claim_order))
  const runs = leased.map((row) => toClaimedRun(params.namespace, { ...row, run_id: row.run_id }))
  return {
    runs,
    isCutByBytes: leased[0]?.is_cut ?? false,
    isHeld: first?.is_held ?? false,
    opensAt: first?.opens_ms == null ? undefined : new Date(first.opens_ms),
  }
}
