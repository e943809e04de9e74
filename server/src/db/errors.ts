/** Classifies errors from PostgreSQL and the connection pool. */

function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

/** Invalid data (class 22) or a violated constraint (class 23): caused by the values of one statement. */
export function isDataError(error: unknown): boolean {
  const state = sqlState(error)
  return state !== undefined && (state.startsWith('22') || state.startsWith('23'))
}

/** A unique constraint rejected a row that already exists. */
export function isUniqueViolation(error: unknown): boolean {
  return sqlState(error) === '23505'
}

/** Serialization failure or deadlock: the transaction lost a race and may be retried as is. */
export function isConflictError(error: unknown): boolean {
  const state = sqlState(error)
  return state === '40001' || state === '40P01'
}

/**
 * PostgreSQL cancelled the statement (57014, query_canceled): it ran longer
 * than statement_timeout (see createDatabase), or an administrator cancelled
 * it. Nothing it did was kept; the same request may succeed later.
 */
export function isStatementTimeout(error: unknown): boolean {
  return sqlState(error) === '57014'
}

/**
 * SQLSTATEs that say the database cannot serve now, whatever the request:
 * the session was ended for idling in a transaction (25P03), the server is
 * read-only, as a standby is during a failover (25006), or it is out of
 * memory (53200) or connections (53300).
 */
const unavailableStates = new Set(['25P03', '25006', '53200', '53300'])

/**
 * The database cannot be reached or is going away: connection failures
 * (class 08), shutdown (57P0x), the states above, or the pool timing out
 * while waiting for a connection.
 */
export function isUnavailableError(error: unknown): boolean {
  const state = sqlState(error)
  if (state) return state.startsWith('08') || state.startsWith('57P') || unavailableStates.has(state)
  const e = error as { name?: unknown; code?: unknown; message?: unknown } | null
  if (e?.name === 'KnexTimeoutError') return true
  if (typeof e?.code === 'string' && ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND'].includes(e.code)) return true
  return typeof e?.message === 'string' && /Connection terminated|Client has encountered a connection error/.test(e.message)
}
