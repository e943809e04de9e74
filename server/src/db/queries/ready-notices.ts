import { readyChannel } from '../channels.js'
import { type Executor, sql } from '../database.js'

/** Sends a ready notification outside of an insert (after promotions, retries, releases). */
export async function readyNotify(db: Executor, params: { notice: string }): Promise<void> {
  await sql(db, 'SELECT pg_notify($1, $2)', [readyChannel, params.notice])
}
