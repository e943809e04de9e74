import { status } from '@grpc/grpc-js'
import { expect, it } from 'vitest'
import { createLogger } from '../../server/src/logger.js'
import { toRpcStatus } from '../../server/src/rpc/error-map.js'

const logger = createLogger('silent')

/** An error as pg reports one from PostgreSQL: the SQLSTATE in `code`. */
function postgresError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code })
}

it.each([
  ['57014', 'canceling statement due to statement timeout', status.UNAVAILABLE],
  ['25006', 'cannot execute UPDATE in a read-only transaction', status.UNAVAILABLE],
  ['53200', 'out of memory', status.UNAVAILABLE],
  ['53300', 'too many connections', status.UNAVAILABLE],
  ['25P03', 'terminating connection due to idle-in-transaction timeout', status.UNAVAILABLE],
  ['57P01', 'terminating connection due to administrator command', status.UNAVAILABLE],
  ['40001', 'could not serialize access', status.ABORTED],
  ['42P01', 'relation does not exist', status.INTERNAL],
])('SQLSTATE %s (%s) is status %s', (code, message, expected) => {
  expect(toRpcStatus(postgresError(code, message), logger).code).toBe(expected)
})

it('a statement cancelled by its timeout says so, and that it may be retried', () => {
  expect(toRpcStatus(postgresError('57014', 'canceling statement due to statement timeout'), logger)).toEqual({
    code: status.UNAVAILABLE,
    message: 'the database cancelled the statement: it ran longer than its timeout; retry later',
  })
})
