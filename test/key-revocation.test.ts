import { type ServiceError, status } from '@grpc/grpc-js'
import { GetRunRequest } from '@stackshift/proto/run-service'
import { RevokeApiKeyRequest } from '@stackshift/proto/admin-service'
import { ConnectRequest, type ConnectResponse } from '@stackshift/proto/worker-service'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createTestDatabase } from './support/database.js'
import { ApiKeyScope, type KeyedClients, bearer, callWith, connectClients, createKey } from './support/keyed-clients.js'
import { type TestServer, startTestServer } from './support/server.js'
import { waitUntil } from './support/wait-until.js'

/*
 * Two servers on one database. A key revoked through one stops working on
 * the other within 5 seconds, for new calls and for a stream opened with it.
 */

const adminKey = 'test-admin-key-0123456789abcdefghijklmnop'
let first: TestServer
let second: TestServer
let onFirst: KeyedClients
let onSecond: KeyedClients

beforeAll(async () => {
  const url = await createTestDatabase()
  first = await startTestServer(url, { auth: 'required', adminKey })
  second = await startTestServer(url, { auth: 'required', adminKey })
  onFirst = connectClients(first.address)
  onSecond = connectClients(second.address)
})

afterAll(async () => {
  onFirst.close()
  onSecond.close()
  await Promise.all([first.stop(), second.stop()])
})

const getRun = (clients: KeyedClients, key: string) =>
  callWith(
    clients.runs.getRun.bind(clients.runs),
    GetRunRequest.fromPartial({ namespace: 'billing', runId: '00000000-0000-7000-8000-000000000000' }),
    key,
  )

it('a key revoked on one server is refused by the other within 5 seconds, on new calls and on its open stream', async () => {
  const key = await createKey(onFirst, adminKey, {
    namespace: 'billing',
    scopes: [ApiKeyScope.API_KEY_SCOPE_READ, ApiKeyScope.API_KEY_SCOPE_WORKER],
  })
  // Known to the second server (and in its cache) before the revocation.
  expect((await getRun(onSecond, key.secret)).code).toBe(status.NOT_FOUND)
  const stream = onSecond.workers.connect(bearer(key.secret))
  const ended = new Promise<ServiceError>((resolve) => stream.on('error', resolve))
  const welcomed = new Promise<ConnectResponse>((resolve) => stream.once('data', resolve))
  stream.write(ConnectRequest.fromPartial({ hello: { namespace: 'billing', queues: ['q'], jobs: ['j'], slots: 1 } }))
  expect((await welcomed).welcome?.workerId).toBeTruthy()

  const revokedAt = Date.now()
  const revoked = await callWith(onFirst.admin.revokeApiKey.bind(onFirst.admin), RevokeApiKeyRequest.fromPartial({ id: key.id }), adminKey)
  expect(revoked.code).toBe(status.OK)
  await waitUntil(
    async () => (await getRun(onSecond, key.secret)).code,
    (code) => code === status.UNAUTHENTICATED,
    5000,
  )
  const refusedAfterMs = Date.now() - revokedAt
  expect(refusedAfterMs).toBeLessThan(5000)

  // The stream's next message is checked again, and ends the stream.
  stream.write(ConnectRequest.fromPartial({ addedSlots: 1 }))
  const error = await ended
  expect(error.code).toBe(status.UNAUTHENTICATED)
  expect((await getRun(onFirst, key.secret)).code).toBe(status.UNAUTHENTICATED)
})
