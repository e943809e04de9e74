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
 * The database cannot be reached or is going away: connection failures
 * (class 08), shutdown (57P0x), too many connections (53300), or the pool
 * timing out while waiting for a connection.
 */
export function isUnavailableError(error: unknown): boolean {
  const state = sqlState(error)
  if (state) return state.startsWith('08') || state.startsWith('57P') || state === '53300'
  const e = error as { name?: unknown; code?: unknown; message?: unknown } | null
  if (e?.name === 'KnexTimeoutError') return true
  if (typeof e?.code === 'string' && ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND'].includes(e.code)) return true
  return typeof e?.message === 'string' && /Connection terminated|Client has encountered a connection error/.test(e.message)
}
