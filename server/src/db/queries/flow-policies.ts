import type { JobPolicies, JobPolicyRecord, QueuePolicyRecord } from '../../core/flow-policy.js'
import { concurrencyKeyMaxLength } from '../../core/flow-policy.js'
import { type Executor, sql } from '../database.js'

/*
 * Flow-control policies: one row per job (job_policies) and per queue
 * (queue_policies), each with a version that every change bumps. A trigger
 * notifies stackshift_flow_policies on every change (migration 0013).
 */

interface JobPolicyRow {
  namespace: string
  job: string
  policies: JobPolicies
  version: string
  updated_at: Date
}

interface QueuePolicyRow {
  namespace: string
  queue: string
  concurrency: number
  version: string
  updated_at: Date
}

function toJobPolicyRecord(row: JobPolicyRow): JobPolicyRecord {
  return { namespace: row.namespace, job: row.job, policies: row.policies, version: Number(row.version), updatedAt: row.updated_at }
}

function toQueuePolicyRecord(row: QueuePolicyRow): QueuePolicyRecord {
  return {
    namespace: row.namespace,
    queue: row.queue,
    policies: { concurrency: row.concurrency },
    version: Number(row.version),
    updatedAt: row.updated_at,
  }
}

/**
 * Stores a job's policies. The version goes up only when they differ from
 * the stored ones (jsonb equality: key order does not matter), so workers
 * declaring the same policies in every hello change nothing. Returns the
 * stored row and whether this call changed it.
 */
export async function jobPolicyUpsert(
  db: Executor,
  params: { namespace: string; job: string; policies: JobPolicies },
): Promise<{ record: JobPolicyRecord; isChanged: boolean }> {
  const changed = await sql<JobPolicyRow>(
    db,
    `INSERT INTO stackshift.job_policies AS p (namespace, job, policies, version) VALUES ($1, $2, $3::jsonb, 1)
     ON CONFLICT (namespace, job) DO UPDATE SET policies = EXCLUDED.policies, version = p.version + 1, updated_at = now()
       WHERE p.policies IS DISTINCT FROM EXCLUDED.policies
     RETURNING namespace, job, policies, version::text AS version, updated_at`,
    [params.namespace, params.job, JSON.stringify(params.policies)],
  )
  if (changed[0]) return { record: toJobPolicyRecord(changed[0]), isChanged: true }
  return { record: (await jobPolicyFind(db, params))!, isChanged: false }
}

/** A job's stored policies, or undefined if it was never configured. */
export async function jobPolicyFind(db: Executor, params: { namespace: string; job: string }): Promise<JobPolicyRecord | undefined> {
  const rows = await sql<JobPolicyRow>(
    db,
    `SELECT namespace, job, policies, version::text AS version, updated_at FROM stackshift.job_policies WHERE namespace = $1 AND job = $2`,
    [params.namespace, params.job],
  )
  return rows[0] && toJobPolicyRecord(rows[0])
}

/** Every job's policies (namespace given: that namespace's), by namespace and name. */
export async function jobPolicyList(db: Executor, params: { namespace: string | undefined }): Promise<JobPolicyRecord[]> {
  const rows = await sql<JobPolicyRow>(
    db,
    `SELECT namespace, job, policies, version::text AS version, updated_at FROM stackshift.job_policies
     WHERE $1::text IS NULL OR namespace = $1 ORDER BY namespace, job`,
    [params.namespace ?? null],
  )
  return rows.map(toJobPolicyRecord)
}

/** Stores a queue's policies; the version goes up only when they change. */
export async function queuePolicyUpsert(
  db: Executor,
  params: { namespace: string; queue: string; concurrency: number },
): Promise<{ record: QueuePolicyRecord; isChanged: boolean }> {
  const changed = await sql<QueuePolicyRow>(
    db,
    `INSERT INTO stackshift.queue_policies AS p (namespace, queue, concurrency, version) VALUES ($1, $2, $3, 1)
     ON CONFLICT (namespace, queue) DO UPDATE SET concurrency = EXCLUDED.concurrency, version = p.version + 1, updated_at = now()
       WHERE p.concurrency <> EXCLUDED.concurrency
     RETURNING namespace, queue, concurrency, version::text AS version, updated_at`,
    [params.namespace, params.queue, params.concurrency],
  )
  if (changed[0]) return { record: toQueuePolicyRecord(changed[0]), isChanged: true }
  return { record: (await queuePolicyFind(db, params))!, isChanged: false }
}

/** A queue's stored policies, or undefined if it was never configured. */
export async function queuePolicyFind(db: Executor, params: { namespace: string; queue: string }): Promise<QueuePolicyRecord | undefined> {
  const rows = await sql<QueuePolicyRow>(
    db,
    `SELECT namespace, queue, concurrency, version::text AS version, updated_at FROM stackshift.queue_policies
     WHERE namespace = $1 AND queue = $2`,
    [params.namespace, params.queue],
  )
  return rows[0] && toQueuePolicyRecord(rows[0])
}

/** Every queue's policies. */
export async function queuePolicyList(db: Executor): Promise<QueuePolicyRecord[]> {
  const rows = await sql<QueuePolicyRow>(
    db,
    `SELECT namespace, queue, concurrency, version::text AS version, updated_at FROM stackshift.queue_policies ORDER BY namespace, queue`,
  )
  return rows.map(toQueuePolicyRecord)
}

/**
 * Puts unfinished runs that have no key value under flow control: runs of a
 * job that just got a claim-time policy (`job`, key read at `keyPath` as
 * core/flow-policy.ts readKeyValue reads it), or of a queue that just got a
 * limit (`queue`, the shared key ''). Running runs are keyed too, so they
 * count against the new limits. A run made ready here registers its key
 * through the trigger flow_key_ready. Scans the unfinished runs of the
 * namespace: it runs once per change of policies, not per run.
 */
export async function runAssignConcurrencyKeys(
  db: Executor,
  params: { namespace: string; job: string; keyPath: string | undefined } | { namespace: string; queue: string },
): Promise<number> {
  const isJob = 'job' in params
  const rows = await sql<{ n: number }>(
    db,
    `WITH keyed AS (
       UPDATE stackshift.runs SET concurrency_key = CASE
         WHEN $3::text[] IS NULL THEN ''
         WHEN jsonb_typeof(payload #> $3::text[]) IN ('string', 'number', 'boolean') THEN left(payload #>> $3::text[], ${concurrencyKeyMaxLength})
         ELSE '' END
       WHERE namespace = $1 AND concurrency_key IS NULL AND status IN ('queued', 'scheduled', 'waiting', 'running')
         AND (CASE WHEN $4 THEN job ELSE queue END) = $2
       RETURNING 1
     )
     SELECT count(*)::integer AS n FROM keyed`,
    [params.namespace, isJob ? params.job : params.queue, isJob && params.keyPath ? params.keyPath.split('.') : null, isJob],
  )
  return rows[0]!.n
}

/** What a ready run under flow control is held back by, as counted now (see core/flow-wait.ts). */
export interface FlowUsage {
  /** Runs of the queue running now (when the queue has a limit). */
  queueRunning: number | undefined
  /** Runs of the job running now (when the job has a job-wide concurrency limit). */
  jobRunning: number | undefined
  /** Runs of the run's key running now (when the job has a keyed concurrency limit). */
  keyRunning: number | undefined
  /** Starts within the rate limit's window, and when the window next has room. */
  rateStarts: number | undefined
  rateOpensAt: Date | undefined
}

/** Counts what the flow claim would count for a run of this queue, job and key, on the database clock now. */
export async function flowUsageFind(
  db: Executor,
  params: {
    namespace: string
    queue: string
    job: string
    key: string
    hasQueueLimit: boolean
    hasJobLimit: boolean
    hasKeyLimit: boolean
    rate: { limit: number; periodMs: number; rateKey: string } | undefined
  },
): Promise<FlowUsage> {
  const rows = await sql<{
    queue_running: number | null
    job_running: number | null
    key_running: number | null
    rate_starts: number | null
    rate_opens_at: Date | null
  }>(
    db,
    `SELECT
       CASE WHEN $5 THEN (SELECT count(*)::integer FROM stackshift.runs
         WHERE status = 'running' AND namespace = $1 AND queue = $2 AND lease_expires_at > now()) END AS queue_running,
       CASE WHEN $6 THEN (SELECT count(*)::integer FROM stackshift.runs
         WHERE status = 'running' AND namespace = $1 AND job = $3 AND concurrency_key IS NOT NULL AND lease_expires_at > now()) END AS job_running,
       CASE WHEN $7 THEN (SELECT count(*)::integer FROM stackshift.runs
         WHERE status = 'running' AND namespace = $1 AND job = $3 AND concurrency_key = $4 AND lease_expires_at > now()) END AS key_running,
       rate.starts AS rate_starts, rate.opens_at AS rate_opens_at
     FROM (
       SELECT count(*)::integer AS starts, (array_agg(s ORDER BY s DESC))[$8::integer] + $9::bigint * interval '1 millisecond' AS opens_at
       FROM stackshift.flow_rate_windows AS w, unnest(w.starts) AS s
       WHERE $8::integer IS NOT NULL AND w.namespace = $1 AND w.job = $3 AND w.rate_key = $10
         AND s > now() - $9::bigint * interval '1 millisecond'
     ) AS rate`,
    [
      params.namespace,
      params.queue,
      params.job,
      params.key,
      params.hasQueueLimit,
      params.hasJobLimit,
      params.hasKeyLimit,
      params.rate?.limit ?? null,
      params.rate?.periodMs ?? null,
      params.rate?.rateKey ?? '',
    ],
  )
  const row = rows[0]!
  return {
    queueRunning: row.queue_running ?? undefined,
    jobRunning: row.job_running ?? undefined,
    keyRunning: row.key_running ?? undefined,
    rateStarts: params.rate ? (row.rate_starts ?? 0) : undefined,
    rateOpensAt: row.rate_opens_at ?? undefined,
  }
}
