import type { LockRecord } from '../../core/run.js'
import { type Executor, sql } from '../database.js'

/*
 * State Store locks (see migration 0004): a lock row per held key, with the
 * lock id of its acquisition and a fencing token from one sequence. An
 * expired lock is free for every statement here; the state sweeper deletes it.
 */

interface LockRow {
  key: string
  lock_id: string
  fencing_token: number
  expires_at: Date
}

function toLock(row: LockRow): LockRecord {
  return { key: row.key, lockId: row.lock_id, fencingToken: row.fencing_token, expiresAt: row.expires_at }
}

const lockColumns = `key, lock_id::text AS lock_id, fencing_token::float8 AS fencing_token, expires_at`

/** Takes the lock if it is free or expired, with a new lock id and fencing token. */
export async function lockTryAcquire(
  db: Executor,
  params: { namespace: string; key: string; ttlMs: number },
): Promise<LockRecord | undefined> {
  const rows = await sql<LockRow>(
    db,
    `INSERT INTO stackshift.locks AS l (namespace, key, lock_id, fencing_token, expires_at)
     VALUES ($1, $2, gen_random_uuid(), nextval('stackshift.fencing_tokens'), now() + $3::bigint * interval '1 millisecond')
     ON CONFLICT (namespace, key) DO UPDATE
       SET lock_id = excluded.lock_id, fencing_token = excluded.fencing_token, expires_at = excluded.expires_at
       WHERE l.expires_at <= now()
     RETURNING ${lockColumns}`,
    [params.namespace, params.key, params.ttlMs],
  )
  return rows[0] && toLock(rows[0])
}

/** Extends a lock held by `lockId`; undefined when it is not held by it. */
export async function lockExtend(
  db: Executor,
  params: { namespace: string; key: string; lockId: string; ttlMs: number },
): Promise<LockRecord | undefined> {
  const rows = await sql<LockRow>(
    db,
    `UPDATE stackshift.locks SET expires_at = now() + $4::bigint * interval '1 millisecond'
     WHERE namespace = $1 AND key = $2 AND lock_id = $3::uuid AND expires_at > now()
     RETURNING ${lockColumns}`,
    [params.namespace, params.key, params.lockId, params.ttlMs],
  )
  return rows[0] && toLock(rows[0])
}

/** Frees a lock acquired as `lockId`. Returns false when that acquisition no longer owns it. */
export async function lockRelease(db: Executor, params: { namespace: string; key: string; lockId: string }): Promise<boolean> {
  const rows = await sql<{ released: number }>(
    db,
    `DELETE FROM stackshift.locks WHERE namespace = $1 AND key = $2 AND lock_id = $3::uuid RETURNING 1 AS released`,
    [params.namespace, params.key, params.lockId],
  )
  return rows.length > 0
}

/**
 * Whether `fencingToken` is the token of a lock held now. Locks that lock row
 * until commit, so the lock cannot change hands before the fenced write commits.
 */
export async function lockHoldFencingToken(db: Executor, params: { namespace: string; fencingToken: number }): Promise<boolean> {
  const rows = await sql<{ held: number }>(
    db,
    `SELECT 1 AS held FROM stackshift.locks WHERE namespace = $1 AND fencing_token = $2 AND expires_at > now() FOR SHARE`,
    [params.namespace, params.fencingToken],
  )
  return rows.length > 0
}
