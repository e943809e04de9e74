import { status } from '@grpc/grpc-js'
import type pg from 'pg'
import { expect, it } from 'vitest'
import { useTestEnvironment } from './support/environment.js'
import { rejectionOf } from './support/raw-client.js'

/*
 * Every pooled connection carries statement_timeout and
 * idle_in_transaction_session_timeout. A statement cancelled by its timeout
 * is UNAVAILABLE, retryable, and leaves nothing behind. Here the timeout is
 * short, and a row lock held by the test makes a cancellation wait past it.
 */

const env = useTestEnvironment({ dbStatementTimeoutMs: 300, dbIdleInTransactionTimeoutMs: 5000 })

it("the server's pooled connections carry the statement and idle-in-transaction timeouts", async () => {
  const { rows } = await env.server.server.db.raw<pg.QueryResult<{ statement: string; idle: string }>>(
    `SELECT current_setting('statement_timeout') AS statement, current_setting('idle_in_transaction_session_timeout') AS idle`,
  )
  expect(rows).toEqual([{ statement: '300ms', idle: '5s' }])
})

it('a statement that runs past the timeout is UNAVAILABLE and changes nothing', async () => {
  const { run_id } = await env.raw.runs('Enqueue', { run: { queue: 'locked', job: 'j' } })
  await env.db.query('BEGIN')
  try {
    await env.db.query('SELECT 1 FROM stackshift.runs WHERE id = $1 FOR UPDATE', [run_id])
    const rejection = await rejectionOf(env.raw.runs('CancelRun', { run_id }))
    expect(rejection).toEqual({
      code: status.UNAVAILABLE,
      details: 'the database cancelled the statement: it ran longer than its timeout; retry later',
    })
  } finally {
    await env.db.query('ROLLBACK')
  }
  const { rows } = await env.db.query<{ status: string }>('SELECT status::text FROM stackshift.runs WHERE id = $1', [run_id])
  expect(rows).toEqual([{ status: 'queued' }])
  // Retried once the lock is gone, the same call succeeds.
  await env.raw.runs('CancelRun', { run_id })
  const after = await env.db.query<{ status: string }>('SELECT status::text FROM stackshift.runs WHERE id = $1', [run_id])
  expect(after.rows).toEqual([{ status: 'cancelled' }])
})
