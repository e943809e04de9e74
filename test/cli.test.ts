import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { StackShift, UnauthenticatedError } from '@stackshift/sdk'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createTestDatabase } from './support/database.js'
import { type TestServer, startTestServer } from './support/server.js'

/*
 * `stackshift keys ...`, run as a user runs it: the command npm links into
 * node_modules/.bin, against a server that requires keys, reading
 * STACKSHIFT_ADDRESS and STACKSHIFT_API_KEY.
 */

const repoRoot = fileURLToPath(new URL('..', import.meta.url))
const command = fileURLToPath(new URL('../node_modules/.bin/stackshift', import.meta.url))
const adminKey = 'test-admin-key-0123456789abcdefghijklmnop'
let server: TestServer

beforeAll(async () => {
  server = await startTestServer(await createTestDatabase(), { auth: 'required', adminKey })
})

afterAll(async () => {
  await server.stop()
})

async function stackshift(args: string[], apiKey = adminKey): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(command, args, {
      cwd: repoRoot,
      env: { ...process.env, STACKSHIFT_ADDRESS: server.address, STACKSHIFT_API_KEY: apiKey },
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

it('keys create prints a key that works for its namespace and scopes; list shows it; revoke ends it', async () => {
  const created = await stackshift(['keys', 'create', '--namespace', 'billing', '--scopes', 'enqueue,read', '--name', 'api'])
  expect(created.code).toBe(0)
  const key = created.stdout.trim()
  expect(key).toMatch(/^ssk_[0-9a-f]{16}_[A-Za-z0-9_-]{32}$/)
  const id = key.slice(4, 20)
  expect(created.stderr).toContain(`created API key ${id} for namespace billing with scopes enqueue,read`)

  const client = new StackShift({ address: server.address, namespace: 'billing', apiKey: key })
  try {
    const run = await client.queue('emails').enqueue('send', { to: 'ada' })
    expect((await client.getRun(run.id)).status).toBe('queued')

    const listed = await stackshift(['keys', 'list', '--namespace', 'billing'])
    expect(listed.code).toBe(0)
    expect(listed.stdout).toMatch(new RegExp(`^${id}\\tbilling\\tenqueue,read\\tactive\\t\\S+\\tapi$`, 'm'))

    const revoked = await stackshift(['keys', 'revoke', id])
    expect(revoked).toMatchObject({ code: 0, stdout: `revoked API key ${id} (api)\n` })
    await expect(client.getRun(run.id)).rejects.toBeInstanceOf(UnauthenticatedError)
    const all = await stackshift(['keys', 'list', '--include-revoked'])
    expect(all.stdout).toMatch(new RegExp(`^${id}\\tbilling\\tenqueue,read\\trevoked `, 'm'))
  } finally {
    client.close()
  }
})

it('refuses a call without the admin scope, and explains a mistyped command', async () => {
  const created = await stackshift(['keys', 'create', '--namespace', 'billing', '--scopes', 'read', '--name', 'reader'])
  const reader = created.stdout.trim()
  const refused = await stackshift(['keys', 'list'], reader)
  expect(refused.code).toBe(1)
  expect(refused.stderr).toContain('PermissionDeniedError: this API key lacks the "admin" scope')

  const mistyped = await stackshift(['keys', 'create', '--scopes', 'reed', '--name', 'x'])
  expect(mistyped.code).toBe(2)
  expect(mistyped.stderr).toContain('unknown scope "reed"; scopes: enqueue, read, worker, state, operate, admin')
  expect((await stackshift(['keys', 'list'], 'ssk_0123456789abcdef_' + 'x'.repeat(32))).stderr).toContain('UnauthenticatedError')
})
