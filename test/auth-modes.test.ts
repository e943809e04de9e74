import { status } from '@grpc/grpc-js'
import { GetRunRequest, type GetRunResponse } from '@stackshift/proto/run-service'
import { expect, it } from 'vitest'
import { createTestDatabase } from './support/database.js'
import { callWith, connectClients } from './support/keyed-clients.js'
import { startTestServer } from './support/server.js'

/*
 * STACKSHIFT_AUTH=auto, the default: off for a server that listens on
 * loopback only (npm start), required for one that listens beyond it.
 */

async function codeWithoutKey(host: string, auth: 'auto' | 'off'): Promise<status> {
  const server = await startTestServer(await createTestDatabase(), { host, auth })
  const clients = connectClients(`127.0.0.1:${server.server.port}`)
  try {
    const outcome = await callWith<GetRunRequest, GetRunResponse>(
      clients.runs.getRun.bind(clients.runs),
      GetRunRequest.fromPartial({ runId: '00000000-0000-7000-8000-000000000000' }),
      undefined,
    )
    return outcome.code
  } finally {
    clients.close()
    await server.stop()
  }
}

it('a server on loopback serves calls without a key', async () => {
  expect(await codeWithoutKey('127.0.0.1', 'auto')).toBe(status.NOT_FOUND)
})

it('a server on every interface requires a key, unless auth is turned off by name', async () => {
  expect(await codeWithoutKey('0.0.0.0', 'auto')).toBe(status.UNAUTHENTICATED)
  expect(await codeWithoutKey('0.0.0.0', 'off')).toBe(status.NOT_FOUND)
})
