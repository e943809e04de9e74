import type { StateEntry } from '../../core/run.js'
import { type Executor, sql } from '../database.js'

/*
 * State Store entries (see migration 0004; locks are in state-locks.ts). An entry whose
 * expires_at has passed is absent for every statement here; the sweeper
 * deletes it later. TTLs are milliseconds from now on the database clock; 0
 * means no expiry.
 */

interface EntryRow {
  key: string
  value_json: string
  version: number
  expires_at: Date | null
  updated_at: Date
}

function toEntry(row: EntryRow): StateEntry {
  return {
    key: row.key,
    valueJson: row.value_json,
    version: row.version,
    expiresAt: row.expires_at ?? undefined,
    updatedAt: row.updated_at,
  }
}

const entryColumns = `key, value::text AS value_json, version::float8 AS version, expires_at, updated_at`
const isLive = `(expires_at IS NULL OR expires_at > now())`
const expiryFromTtl = (param: string) => `CASE WHEN ${param}::bigint > 0 THEN now() + ${param}::bigint * interval '1 millisecond' END`

export async function stateGet(db: Executor, params: { namespace: string; key: string }): Promise<StateEntry | undefined> {
  const rows = await sql<EntryRow>(db, `SELECT ${entryColumns} FROM stackshift.state WHERE namespace = $1 AND key = $2 AND ${isLive}`, [
    params.namespace,
    params.key,
  ])
  return rows[0] && toEntry(rows[0])
}

/** JSON type of the live value ('number', 'string', ...), or undefined when absent. */
export async function stateValueType(db: Executor, params: { namespace: string; key: string }): Promise<string | undefined> {
  const rows = await sql<{ type: string }>(
    db,
    `SELECT jsonb_typeof(value) AS type FROM stackshift.state WHERE namespace = $1 AND key = $2 AND ${isLive}`,
    [params.namespace, params.key],
  )
  return rows[0]?.type
}

/** Writes an entry; with `onlyIfAbsent`, only where there is no live one (an expired one is replaced). */
function upsertStatement(onlyIfAbsent: boolean): string {
  return `INSERT INTO stackshift.state AS s (namespace, key, version, expires_at, updated_at, value)
     VALUES ($1, $2, 1, ${expiryFromTtl('$4')}, now(), $3::jsonb)
     ON CONFLICT (namespace, key) DO UPDATE
       SET value = excluded.value, version = s.version + 1, expires_at = excluded.expires_at, updated_at = now()
       ${onlyIfAbsent ? 'WHERE s.expires_at <= now()' : ''}
     RETURNING version::float8 AS version`
}

const setStatement = upsertStatement(false)
const setIfAbsentStatement = upsertStatement(true)

/** Creates or replaces an entry. Returns its new version. */
export async function stateSet(
  db: Executor,
  params: { namespace: string; key: string; valueJson: string; ttlMs: number },
): Promise<number> {
  const rows = await sql<{ version: number }>(db, setStatement, [params.namespace, params.key, params.valueJson, params.ttlMs])
  return rows[0]!.version
}

/**
 * Writes an entry only where there is no live one. Returns the new version,
 * or undefined when a live entry exists. One statement: of concurrent
 * callers exactly one inserts.
 */
export async function stateSetIfAbsent(
  db: Executor,
  params: { namespace: string; key: string; valueJson: string; ttlMs: number },
): Promise<number | undefined> {
  const rows = await sql<{ version: number }>(db, setIfAbsentStatement, [params.namespace, params.key, params.valueJson, params.ttlMs])
  return rows[0]?.version
}

/** Replaces the live entry if it has `expectedVersion`. Returns the new version, or undefined when it did not. */
export async function stateReplaceVersion(
  db: Executor,
  params: { namespace: string; key: string; expectedVersion: number; valueJson: string; ttlMs: number },
): Promise<number | undefined> {
  const rows = await sql<{ version: number }>(
    db,
    `UPDATE stackshift.state
     SET value = $4::jsonb, version = version + 1, expires_at = ${expiryFromTtl('$5')}, updated_at = now()
     WHERE namespace = $1 AND key = $2 AND version = $3 AND ${isLive}
     RETURNING version::float8 AS version`,
    [params.namespace, params.key, params.expectedVersion, params.valueJson, params.ttlMs],
  )
  return rows[0]?.version
}

/** Deletes an entry. Returns whether it was live. */
export async function stateDelete(db: Executor, params: { namespace: string; key: string }): Promise<boolean> {
  const rows = await sql<{ was_live: boolean }>(
    db,
    `DELETE FROM stackshift.state WHERE namespace = $1 AND key = $2 RETURNING ${isLive} AS was_live`,
    [params.namespace, params.key],
  )
  return rows[0]?.was_live ?? false
}

/**
 * Adds `delta` to a numeric entry (absent or expired: to 0), in exact decimal
 * arithmetic. `ttlMs` > 0 sets a new expiry; 0 keeps the current one. Returns
 * undefined when the live value is not a number (nothing is written).
 */
export async function stateIncrement(
  db: Executor,
  params: { namespace: string; key: string; delta: number; ttlMs: number },
): Promise<{ value: number; version: number } | undefined> {
  const rows = await sql<{ value: string; version: number }>(
    db,
    `INSERT INTO stackshift.state AS s (namespace, key, version, expires_at, updated_at, value)
     VALUES ($1, $2, 1, ${expiryFromTtl('$4')}, now(), to_jsonb($3::numeric))
     ON CONFLICT (namespace, key) DO UPDATE
       SET value = CASE WHEN s.expires_at <= now() THEN excluded.value ELSE to_jsonb(s.value::text::numeric + $3::numeric) END,
           version = s.version + 1,
           expires_at = CASE WHEN $4::bigint > 0 THEN excluded.expires_at WHEN s.expires_at <= now() THEN NULL ELSE s.expires_at END,
           updated_at = now()
       WHERE jsonb_typeof(s.value) = 'number' OR s.expires_at <= now()
     RETURNING value::text AS value, version::float8 AS version`,
    [params.namespace, params.key, String(params.delta), params.ttlMs],
  )
  const row = rows[0]
  return row && { value: Number(row.value), version: row.version }
}

/** Live entries whose keys start with `prefix` and sort after `afterKey`, in key order. */
export async function stateList(
  db: Executor,
  params: { namespace: string; prefix: string; afterKey: string | undefined; limit: number },
): Promise<StateEntry[]> {
  // Keys sort byte-wise; every key with the prefix lies in [prefix, prefix || U+10FFFF).
  const rows = await sql<EntryRow>(
    db,
    `SELECT ${entryColumns} FROM stackshift.state
     WHERE namespace = $1 AND key >= $2 AND key < $2 || chr(1114111) AND starts_with(key, $2)
       AND ($3::text IS NULL OR key > $3::text) AND ${isLive}
     ORDER BY key
     LIMIT $4`,
    [params.namespace, params.prefix, params.afterKey ?? null, params.limit],
  )
  return rows.map(toEntry)
}

/** Deletes up to `limit` expired entries and expired locks. Returns how many entries. */
export async function stateDeleteExpired(db: Executor, params: { limit: number }): Promise<number> {
  const rows = await sql<{ deleted: number }>(
    db,
    `WITH doomed AS (
       SELECT namespace, key FROM stackshift.state WHERE expires_at <= now() ORDER BY expires_at LIMIT $1
     ),
     deleted AS (
       DELETE FROM stackshift.state AS s USING doomed
       WHERE s.namespace = doomed.namespace AND s.key = doomed.key AND s.expires_at <= now()
       RETURNING 1
     ),
     expired_locks AS (DELETE FROM stackshift.locks WHERE expires_at <= now())
     SELECT count(*)::integer AS deleted FROM deleted`,
    [params.limit],
  )
  return rows[0]?.deleted ?? 0
}
