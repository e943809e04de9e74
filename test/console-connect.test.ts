import { EnqueueRequest, EnqueueResponse, GetRunRequest, GetRunResponse } from '@stackshift/proto/run-service'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase } from './support/database.js'
import { ApiKeyScope, type KeyedClients, connectClients, createKey } from './support/keyed-clients.js'
import { type TestServer, startTestServer } from './support/server.js'

/*
 * The Connect protocol's unary form on the console's port: the same services,
 * validation and access rules as gRPC, over HTTP with JSON or protobuf.
 */

const adminKey = 'test-admin-key-0123456789abcdefghijklmnop'
let server: TestServer
let clients: KeyedClients
let base: string
let readKey: string
let operateKey: string

beforeAll(async () => {
  server = await startTestServer(await createTestDatabase(), { auth: 'required', adminKey })
  base = `http://127.0.0.1:${server.server.consolePort!}`
  clients = connectClients(server.address)
  readKey = (await createKey(clients, adminKey, { namespace: 'default', scopes: [ApiKeyScope.API_KEY_SCOPE_READ] })).secret
  operateKey = (
    await createKey(clients, adminKey, {
      namespace: 'default',
      scopes: [ApiKeyScope.API_KEY_SCOPE_READ, ApiKeyScope.API_KEY_SCOPE_ENQUEUE, ApiKeyScope.API_KEY_SCOPE_OPERATE],
    })
  ).secret
})

afterAll(async () => {
  clients.close()
  await server.stop()
})

/** The Connect error an answer carries. */
function errorOf(answer: { json: unknown }): { code: string; message: string } {
  return answer.json as { code: string; message: string }
}

/** POSTs `body` to a method; resolves with the HTTP status, content type and parsed JSON body. */
async function post(
  method: string,
  body: string | Uint8Array,
  options: { key?: string | undefined; contentType?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; contentType: string | null; json: unknown; bytes: Uint8Array }> {
  const headers: Record<string, string> = { 'content-type': options.contentType ?? 'application/json', ...options.headers }
  if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`
  const response = await fetch(`${base}/stackshift.jobs.v1.${method}`, { method: 'POST', headers, body })
  const bytes = new Uint8Array(await response.arrayBuffer())
  const contentType = response.headers.get('content-type')
  const json: unknown = contentType?.startsWith('application/json') ? JSON.parse(new TextDecoder().decode(bytes)) : undefined
  return { status: response.status, contentType, json, bytes }
}

describe('the Connect endpoint', () => {
  it('answers a JSON request with the JSON of the response, in the protocol JSON mapping', async () => {
    const enqueued = await post('RunService/Enqueue', JSON.stringify({ run: { queue: 'connect', job: 'hello', payloadJson: '{"n":1}' } }), {
      key: operateKey,
    })
    expect(enqueued.status).toBe(200)
    expect(enqueued.contentType).toBe('application/json')
    const runId = (enqueued.json as { runId: string }).runId
    expect(runId).toMatch(/^[0-9a-f-]{36}$/)

    const got = await post('RunService/GetRun', JSON.stringify({ runId }), { key: readKey })
    expect(got.status).toBe(200)
    const run = GetRunResponse.fromJSON(got.json).run!
    expect(run).toMatchObject({ id: runId, queue: 'connect', job: 'hello', payloadJson: '{"n": 1}' })
    // Enums by name and timestamps in RFC 3339, as the protocol's JSON mapping writes them.
    const json = got.json as { run: { status: string; createdAt: string } }
    expect(json.run.status).toBe('RUN_STATUS_QUEUED')
    expect(json.run.createdAt).toMatch(/^\d{4}-\d\d-\d\dT.*Z$/)
  })

  it('takes and gives protobuf with application/proto', async () => {
    const request = EnqueueRequest.encode(EnqueueRequest.fromPartial({ run: { queue: 'connect', job: 'binary' } })).finish()
    const answer = await post('RunService/Enqueue', request, { key: operateKey, contentType: 'application/proto' })
    expect(answer.status).toBe(200)
    expect(answer.contentType).toBe('application/proto')
    const { runId } = EnqueueResponse.decode(answer.bytes)
    const got = await post('RunService/GetRun', GetRunRequest.encode({ namespace: '', runId }).finish(), {
      key: readKey,
      contentType: 'application/proto',
    })
    expect(GetRunResponse.decode(got.bytes).run?.job).toBe('binary')
  })

  it.each([
    ['bad JSON', '{"runId": ', /^request: is not JSON/],
    ['an unknown field', '{"runId": "x", "colour": "blue"}', /^colour: is not a field of stackshift\.jobs\.v1\.GetRunRequest/],
    ['a wrong type', '{"runId": 42}', /^runId: expected string, got 42/],
    ['a nested wrong type', '{"run": {"job": "j", "priority": "high"}}', /^run\.priority: expected number \(int32\)/],
    ['an enum name that does not exist', '{"status": "RUN_STATUS_SLEEPY"}', /^status: is not a valid stackshift\.jobs\.v1\.RunStatus/],
    ['a timestamp that is not one', '{"createdAfter": "yesterday"}', /^createdAfter: is not a valid google\.protobuf\.Timestamp/],
    ['not an object', '[1, 2]', /^request: must be a JSON object/],
  ])('refuses %s with invalid_argument naming the field', async (_, body, message) => {
    const method = body.includes('"run"') ? 'RunService/Enqueue' : body.includes('runId') ? 'RunService/GetRun' : 'RunService/ListRuns'
    const answer = await post(method, body, { key: operateKey })
    expect(answer.status).toBe(400)
    expect(answer.contentType).toBe('application/json')
    expect(errorOf(answer)).toMatchObject({ code: 'invalid_argument' })
    expect(errorOf(answer).message).toMatch(message)
  })

  it("refuses what the service's own validation refuses, as gRPC does", async () => {
    const answer = await post('RunService/Enqueue', JSON.stringify({ run: { job: '' } }), { key: operateKey })
    expect(answer.status).toBe(400)
    expect(errorOf(answer)).toMatchObject({ code: 'invalid_argument' })
    expect(errorOf(answer).message).toMatch(/^run\.job: /)
    const missing = await post('RunService/GetRun', JSON.stringify({ runId: '01890000-0000-7000-8000-000000000000' }), { key: readKey })
    expect(missing.status).toBe(404)
    expect(missing.json).toMatchObject({ code: 'not_found' })
  })

  it('refuses a call without a key, or with a key that is not one, with unauthenticated', async () => {
    const none = await post('RunService/ListRuns', '{}')
    expect(none.status).toBe(401)
    expect(errorOf(none)).toMatchObject({ code: 'unauthenticated' })
    expect(errorOf(none).message).toMatch(/requires an API key/)
    const wrong = await post('RunService/ListRuns', '{}', { key: 'ssk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })
    expect(wrong.status).toBe(401)
    expect(wrong.json).toMatchObject({ code: 'unauthenticated' })
  })

  it('refuses an action to a read-only key with permission_denied, and nothing changes', async () => {
    const enqueued = await post('RunService/Enqueue', JSON.stringify({ run: { queue: 'connect', job: 'keep' } }), { key: operateKey })
    const runId = (enqueued.json as { runId: string }).runId
    const refused = await post('RunService/CancelRun', JSON.stringify({ runId }), { key: readKey })
    expect(refused.status).toBe(403)
    expect(errorOf(refused)).toMatchObject({ code: 'permission_denied' })
    expect(errorOf(refused).message).toMatch(/"operate" scope/)
    const got = await post('RunService/GetRun', JSON.stringify({ runId }), { key: readKey })
    expect(got.json).toMatchObject({ run: { status: 'RUN_STATUS_QUEUED' } })
  })

  it('refuses a key of another namespace with permission_denied', async () => {
    const otherKey = (await createKey(clients, adminKey, { namespace: 'other', scopes: [ApiKeyScope.API_KEY_SCOPE_READ] })).secret
    const answer = await post('RunService/ListRuns', JSON.stringify({ namespace: 'default' }), { key: otherKey })
    expect(errorOf(answer)).toMatchObject({ code: 'permission_denied' })
    expect(errorOf(answer).message).toMatch(/namespace "other"/)
  })

  it('does not offer streaming methods', async () => {
    const answer = await post('WorkerService/Connect', '{}', { key: operateKey })
    expect(answer.status).toBe(501)
    expect(errorOf(answer)).toMatchObject({ code: 'unimplemented' })
    expect(errorOf(answer).message).toMatch(/streaming method/)
    const enqueueStream = await post('RunService/EnqueueStream', '{}', { key: operateKey })
    expect(enqueueStream.json).toMatchObject({ code: 'unimplemented' })
  })

  it('answers a method that does not exist with unimplemented, and other content types with 415', async () => {
    const unknown = await post('RunService/Explode', '{}', { key: operateKey })
    expect(unknown.json).toMatchObject({ code: 'unimplemented' })
    const form = await post('RunService/ListRuns', 'a=b', { key: readKey, contentType: 'application/x-www-form-urlencoded' })
    expect(form.status).toBe(415)
  })

  it('takes POST only, and refuses compressed or oversized bodies', async () => {
    const get = await fetch(`${base}/stackshift.jobs.v1.RunService/ListRuns`)
    expect(get.status).toBe(405)
    const gzip = await post('RunService/ListRuns', '{}', { key: readKey, headers: { 'content-encoding': 'gzip' } })
    expect(errorOf(gzip)).toMatchObject({ code: 'unimplemented' })
    expect(errorOf(gzip).message).toMatch(/gzip/)
    const huge = await post('RunService/ListRuns', JSON.stringify({ queue: 'x'.repeat(17 * 1024 * 1024) }), { key: readKey })
    expect(huge.json).toMatchObject({ code: 'resource_exhausted' })
  })

  it('ends a call that runs past connect-timeout-ms with deadline_exceeded', async () => {
    const enqueued = await post('RunService/Enqueue', JSON.stringify({ run: { queue: 'connect', job: 'slow' } }), { key: operateKey })
    const runId = (enqueued.json as { runId: string }).runId
    const answer = await post('RunService/WaitForRun', JSON.stringify({ runId, timeoutMs: 30_000 }), {
      key: readKey,
      headers: { 'connect-timeout-ms': '200' },
    })
    expect(answer.status).toBe(504)
    expect(answer.json).toMatchObject({ code: 'deadline_exceeded' })
  })
})

describe('the console pages', () => {
  it('serves the app for its own routes, the page settings, and nothing outside the bundle', async () => {
    const page = await fetch(`${base}/runs/0190aaaa-0000-7000-8000-000000000000`)
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'")
    expect(await page.text()).toContain('/assets/console.js')
    const script = await fetch(`${base}/assets/console.js`)
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    // fetch asks for gzip and unpacks it: the script arrives whole.
    expect(script.headers.get('content-encoding')).toBe('gzip')
    expect((await script.text()).length).toBeGreaterThan(100_000)
    const config = await fetch(`${base}/config.json`)
    expect(await config.json()).toEqual({ traceUrl: null })
    for (const path of ['/assets/../../package.json', '/%2e%2e/%2e%2e/package.json', '/assets/missing.js', '/..%2fpackage.json']) {
      const response = await fetch(`${base}${path}`)
      const text = await response.text()
      expect(text, path).not.toContain('"name": "@stackshift/console"')
      if (path.endsWith('.js')) expect(response.status).toBe(404)
    }
    const post = await fetch(`${base}/runs`, { method: 'POST', body: '{}' })
    expect(post.status).toBe(405)
  })
})
