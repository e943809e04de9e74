import type { Scope } from '../../core/access.js'
import { apiKeyRevokedChannel } from '../channels.js'
import { type Executor, sql } from '../database.js'

/** An API key as stored, without its secret's hash. */
export interface ApiKeyRecord {
  id: string
  name: string
  namespace: string
  scopes: Scope[]
  createdAt: Date
  expiresAt: Date | undefined
  revokedAt: Date | undefined
}

interface ApiKeyRow {
  id: string
  name: string
  namespace: string
  scopes: Scope[]
  created_at: Date
  expires_at: Date | null
  revoked_at: Date | null
}

const keyColumns = 'id, name, namespace, scopes, created_at, expires_at, revoked_at'

function toApiKeyRecord(row: ApiKeyRow): ApiKeyRecord {
  return {
    id: row.id,
    name: row.name,
    namespace: row.namespace,
    scopes: row.scopes,
    createdAt: row.created_at,
    expiresAt: row.expires_at ?? undefined,
    revokedAt: row.revoked_at ?? undefined,
  }
}

export async function apiKeyInsert(
  db: Executor,
  params: { id: string; name: string; namespace: string; scopes: readonly Scope[]; secretSha256: Buffer; expiresAt: Date | undefined },
): Promise<ApiKeyRecord> {
  const rows = await sql<ApiKeyRow>(
    db,
    `INSERT INTO stackshift.api_keys (id, name, namespace, scopes, secret_sha256, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     RETURNING ${keyColumns}`,
    [params.id, params.name, params.namespace, params.scopes, params.secretSha256, params.expiresAt ?? null],
  )
  return toApiKeyRecord(rows[0]!)
}

/**
 * A key that can authenticate now, with its secret's hash: not revoked, not
 * expired on the database clock. Undefined otherwise.
 */
export async function apiKeyFindUsable(
  db: Executor,
  params: { id: string },
): Promise<(ApiKeyRecord & { secretSha256: Buffer }) | undefined> {
  const rows = await sql<ApiKeyRow & { secret_sha256: Buffer }>(
    db,
    `SELECT ${keyColumns}, secret_sha256 FROM stackshift.api_keys
     WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`,
    [params.id],
  )
  const row = rows[0]
  return row && { ...toApiKeyRecord(row), secretSha256: row.secret_sha256 }
}

/** Keys, newest first: of one namespace (`*` is a namespace here too), or of any when `namespace` is undefined. */
export async function apiKeyList(
  db: Executor,
  params: { namespace: string | undefined; includeRevoked: boolean },
): Promise<ApiKeyRecord[]> {
  const rows = await sql<ApiKeyRow>(
    db,
    `SELECT ${keyColumns} FROM stackshift.api_keys
     WHERE ($1::text IS NULL OR namespace = $1) AND ($2 OR revoked_at IS NULL)
     ORDER BY created_at DESC, id`,
    [params.namespace ?? null, params.includeRevoked],
  )
  return rows.map(toApiKeyRecord)
}

export async function apiKeyGet(db: Executor, params: { id: string }): Promise<ApiKeyRecord | undefined> {
  const rows = await sql<ApiKeyRow>(db, `SELECT ${keyColumns} FROM stackshift.api_keys WHERE id = $1`, [params.id])
  return rows[0] && toApiKeyRecord(rows[0])
}

/**
 * Revokes a key (a revoked one keeps its first revocation time) and tells
 * every server on the revoked channel, at commit.
 */
export async function apiKeyRevoke(db: Executor, params: { id: string }): Promise<ApiKeyRecord | undefined> {
  const rows = await sql<ApiKeyRow>(
    db,
    `WITH revoked AS (
       UPDATE stackshift.api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING ${keyColumns}
     ),
     told AS (SELECT pg_notify($2, id) FROM revoked)
     SELECT revoked.* FROM revoked, (SELECT count(*) FROM told) AS t`,
    [params.id, apiKeyRevokedChannel],
  )
  return rows[0] && toApiKeyRecord(rows[0])
}

/** Whether any key can authenticate now (to warn a server that requires keys and has no way in). */
export async function apiKeyAnyUsable(db: Executor): Promise<boolean> {
  const rows = await sql<{ found: boolean }>(
    db,
    `SELECT EXISTS (SELECT 1 FROM stackshift.api_keys WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())) AS found`,
  )
  return rows[0]?.found ?? false
}
