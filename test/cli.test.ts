import { StackShift, UnauthenticatedError } from '@stackshift/sdk'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { type CliResult, runCli } from './support/cli.js'
import { createTestDatabase } from './support/database.js'
import { type TestServer, startTestServer } from './support/server.js'

/*
 * `stackshift keys ...` and the command line's conventions (help, usage
 * errors), run as a user runs it, against a server that requires keys.
 */

const adminKey = 'test-admin-key-0123456789abcdefghijklmnop'
let server: TestServer

beforeAll(async () => {
  server = await startTestServer(await createTestDatabase(), { auth: 'required', adminKey })
})

afterAll(async () => {
  await server.stop()
})

function stackshift(args: string[], apiKey = adminKey): Promise<CliResult> {
  return runCli(args, { STACKSHIFT_ADDRESS: server.address, STACKSHIFT_API_KEY: apiKey })
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
    expect(listed.stdout).toMatch(/^ID +NAMESPACE +SCOPES +STATE +CREATED +NAME$/m)
    expect(listed.stdout).toMatch(new RegExp(`^${id}  billing +enqueue,read +active +\\S+Z +api$`, 'm'))

    const revoked = await stackshift(['keys', 'revoke', id])
    expect(revoked).toMatchObject({ code: 0, stdout: `revoked API key ${id} (api)\n` })
    await expect(client.getRun(run.id)).rejects.toBeInstanceOf(UnauthenticatedError)
    const all = JSON.parse((await stackshift(['keys', 'list', '--include-revoked', '--json'])).stdout) as {
      keys: Array<{ id: string; revokedAt: string | null; scopes: string[] }>
    }
    const listedKey = all.keys.find((candidate) => candidate.id === id)
    expect(listedKey?.scopes).toEqual(['enqueue', 'read'])
    expect(listedKey?.revokedAt).toMatch(/^\d{4}-\d\d-\d\dT/)
  } finally {
    client.close()
  }
})

it('keys create --json prints the key with its secret, and the key works', async () => {
  const created = await stackshift([
    'keys',
    'create',
    '--scopes',
    'read',
    '--name',
    'script',
    '--json',
    '--expires-at',
    '2099-01-01T00:00:00Z',
  ])
  expect(created).toMatchObject({ code: 0, stderr: '' })
  const key = JSON.parse(created.stdout) as { id: string; secret: string; namespace: string; expiresAt: string; revokedAt: null }
  expect(key).toMatchObject({ namespace: 'default', expiresAt: '2099-01-01T00:00:00.000Z', revokedAt: null })
  const client = new StackShift({ address: server.address, apiKey: key.secret })
  try {
    expect((await client.listRuns()).runs).toEqual([])
  } finally {
    client.close()
  }
})

it('refuses a call without the admin scope with its status name, and explains a mistyped command', async () => {
  const created = await stackshift(['keys', 'create', '--namespace', 'billing', '--scopes', 'read', '--name', 'reader'])
  const reader = created.stdout.trim()
  const refused = await stackshift(['keys', 'list'], reader)
  expect(refused).toMatchObject({ code: 1, stdout: '' })
  expect(refused.stderr).toMatch(/^stackshift: PERMISSION_DENIED: this API key lacks the "admin" scope/)

  const mistyped = await stackshift(['keys', 'create', '--scopes', 'reed', '--name', 'x'])
  expect(mistyped.code).toBe(2)
  expect(mistyped.stderr).toContain('unknown scope "reed"; scopes: enqueue, read, worker, state, operate, admin')
  expect(mistyped.stderr).toContain('see "stackshift keys --help"')
  expect((await stackshift(['keys', 'list'], 'ssk_0123456789abcdef_' + 'x'.repeat(32))).stderr).toMatch(/^stackshift: UNAUTHENTICATED: /)
})

it('--help lists every command, the options of every command and the exit statuses; a group help lists its options', async () => {
  const [overview, runs, bare, unknownGroup] = await Promise.all([
    stackshift(['--help']),
    stackshift(['help', 'runs']),
    stackshift([]),
    stackshift(['nothing', '--help']),
  ])
  expect(overview.code).toBe(0)
  const listed = [...overview.stdout.matchAll(/^ {2}([a-z][a-z ]*[a-z])(?: <[^>]+>)* {2,}\S/gm)].map((match) => match[1])
  expect(listed).toEqual([
    'runs list',
    'runs show',
    'runs cancel',
    'runs rerun',
    'runs replay',
    'runs bulk cancel',
    'runs bulk rerun',
    'runs bulk replay',
    'runs bulk show',
    'runs bulk list',
    'events send',
    'events list',
    'schedules list',
    'schedules get',
    'schedules create',
    'schedules pause',
    'schedules resume',
    'schedules trigger',
    'schedules backfill',
    'schedules delete',
    'state get',
    'state set',
    'state list',
    'queues',
    'workers',
    'keys create',
    'keys list',
    'keys revoke',
  ])
  for (const option of ['--address', '--api-key', '--namespace', '--tls', '--tls-ca', '--json'])
    expect(overview.stdout).toMatch(new RegExp(`^ {2}${option}\\b`, 'm'))
  expect(overview.stdout).toMatch(/^ {2}2 {2}usage error/m)
  expect(overview.stdout).toMatch(/^ {2}3 {2}not found/m)

  expect(runs.code).toBe(0)
  for (const option of [
    '--payload-match <json>',
    '--source-run <id>',
    '--cursor <cursor>',
    '--all',
    '--from-step <step>',
    '--dry-run',
    '--wait',
  ])
    expect(runs.stdout).toContain(`  ${option}`)
  expect(bare).toMatchObject({ code: 2, stdout: '', stderr: 'stackshift: a command is needed\nsee "stackshift --help"\n' })
  expect(unknownGroup.code).toBe(2)
})
