import { randomUUID } from 'node:crypto'
import { type Run, StackShift, type Worker } from '@stackshift/sdk'
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import { type CliResult, runCli } from './support/cli.js'
import { createTestDatabase } from './support/database.js'
import { type TestServer, startTestServer } from './support/server.js'
import { waitUntil } from './support/wait-until.js'

/*
 * `stackshift runs|events|state ...`, run as a user runs it (a process per
 * command), against a server that requires keys; the runs it reads are made
 * and executed by the SDK in this process.
 */

const adminKey = 'test-admin-key-0123456789abcdefghijklmnop'
let server: TestServer
let client: StackShift
let readerKey: string
const workers: Worker[] = []

beforeAll(async () => {
  server = await startTestServer(await createTestDatabase(), { auth: 'required', adminKey })
  client = new StackShift({ address: server.address, apiKey: adminKey })
  readerKey = (await client.admin.createApiKey({ scopes: ['read'], name: 'dashboard' })).secret
})

afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.stop()))
})

afterAll(async () => {
  client.close()
  await server.stop()
})

function stackshift(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, { STACKSHIFT_ADDRESS: server.address, STACKSHIFT_API_KEY: adminKey, ...env })
}

/** The --json document of a command that must succeed. */
async function json<T>(args: string[], env: Record<string, string> = {}): Promise<T> {
  const result = await stackshift([...args, '--json'], env)
  expect(result, `stackshift ${args.join(' ')}`).toMatchObject({ code: 0, stderr: '' })
  return JSON.parse(result.stdout) as T
}

async function startWorker(queue: string): Promise<void> {
  const worker = client.worker({ queues: [queue] })
  workers.push(worker)
  await worker.start()
}

type ListedRuns = { runs: Array<{ id: string; status: string; payload: unknown }>; nextCursor: string | null }
const ids = (listed: ListedRuns) => listed.runs.map((run) => run.id).sort()

it('runs list filters by queue, job, status, time, id, key and payload, and pages with --limit, --cursor and --all', async () => {
  const mail = client.queue('list-mail')
  const [a, b, c] = await Promise.all([
    mail.enqueue('send', { customer: { id: 'c_1' }, n: 1 }),
    mail.enqueue('send', { customer: { id: 'c_2' }, n: 2 }, { idempotencyKey: 'order-2' }),
    mail.enqueue('digest', { customer: { id: 'c_1' }, n: 3 }),
  ])
  await client.cancelRun(c.id)
  const future = new Date(Date.now() + 3_600_000).toISOString()

  const [byQueue, byJob, byStatus, byPayload, byKey, byId, recent, before, firstPage, everything] = await Promise.all([
    json<ListedRuns>(['runs', 'list', '--queue', 'list-mail']),
    json<ListedRuns>(['runs', 'list', '--queue', 'list-mail', '--job', 'send']),
    json<ListedRuns>(['runs', 'list', '--queue', 'list-mail', '--status', 'cancelled']),
    json<ListedRuns>(['runs', 'list', '--payload-match', '{"customer":{"id":"c_1"}}']),
    json<ListedRuns>(['runs', 'list', '--idempotency-key', 'order-2']),
    json<ListedRuns>(['runs', 'list', '--run-id', a.id]),
    json<ListedRuns>(['runs', 'list', '--queue', 'list-mail', '--created-after', '10m', '--created-before', future]),
    json<ListedRuns>(['runs', 'list', '--queue', 'list-mail', '--created-before', '10m']),
    json<ListedRuns>(['runs', 'list', '--queue', 'list-mail', '--limit', '2']),
    json<ListedRuns>(['runs', 'list', '--queue', 'list-mail', '--limit', '1', '--all']),
  ])
  expect(ids(byQueue)).toEqual([a.id, b.id, c.id].sort())
  expect(byQueue.nextCursor).toBeNull()
  expect(ids(byJob)).toEqual([a.id, b.id].sort())
  expect(ids(byStatus)).toEqual([c.id])
  expect(ids(byPayload)).toEqual([a.id, c.id].sort())
  expect(byKey.runs).toMatchObject([{ id: b.id, payload: { customer: { id: 'c_2' }, n: 2 } }])
  expect(ids(byId)).toEqual([a.id])
  expect(ids(recent)).toEqual(ids(byQueue))
  expect(before.runs).toEqual([])
  // Newest first: the last two enqueued make the first page.
  expect(firstPage.runs.map((run) => run.id)).toEqual([c.id, b.id])
  expect(firstPage.nextCursor).toMatch(/./)
  expect(everything.runs.map((run) => run.id)).toEqual([c.id, b.id, a.id])
  expect(everything.nextCursor).toBeNull()

  const [nextPage, table] = await Promise.all([
    json<ListedRuns>(['runs', 'list', '--queue', 'list-mail', '--limit', '2', '--cursor', firstPage.nextCursor!]),
    stackshift(['runs', 'list', '--queue', 'list-mail', '--limit', '2']),
  ])
  expect(ids(nextPage)).toEqual([a.id])
  expect(table.code).toBe(0)
  const lines = table.stdout.trimEnd().split('\n')
  expect(lines[0]).toMatch(/^ID +QUEUE +JOB +STATUS +ATTEMPTS +CREATED +TOOK +ORIGIN$/)
  expect(lines[1]).toMatch(new RegExp(`^${c.id}  list-mail  digest +cancelled  0/\\d+ +\\d{4}-\\d\\d-\\d\\dT\\S+Z  \\S+$`))
  expect(lines[2]).toMatch(new RegExp(`^${b.id}  list-mail  send +queued +0/`))
  expect(lines).toHaveLength(3)
  // Where the next page starts goes to stderr, so stdout stays a table.
  expect(table.stderr).toBe(`more: add --cursor ${firstPage.nextCursor!} (or --all)\n`)
})

it('runs show prints the fields and a timeline: steps, their offsets, and what a sleep and a wait wait for', async () => {
  client.job('checkout', async ({ step }) => {
    await step.run('reserve', () => ({ reserved: 2 }))
    await step.sleep('cool-off', 150)
    const approval = await step.waitForEvent('approval', { event: 'show.approved', match: { order: 'o_7' }, timeout: '1h' })
    await step.run('charge', () => 'charged')
    return { approvedBy: (approval?.data as { by: string } | undefined)?.by }
  })
  await startWorker('show')
  const { id } = await client.queue('show').enqueue('checkout', { order: 'o_7' })
  const waiting = await waitUntil(
    () => client.getRun(id),
    (run) => run.steps.some((step) => step.id === 'approval' && step.status === 'waiting'),
  )
  const timeoutAt = waiting.steps
    .find((step) => step.id === 'approval')!
    .wakeAt!.toISOString()
    .replace(/\.\d{3}Z$/, 'Z')

  const [text, document] = await Promise.all([stackshift(['runs', 'show', id]), json<Run>(['runs', 'show', id])])
  expect(text.code).toBe(0)
  expect(text.stdout).toMatch(new RegExp(`^run +${id}$`, 'm'))
  expect(text.stdout).toMatch(/^job +checkout on queue show$/m)
  expect(text.stdout).toMatch(/^status +waiting$/m)
  expect(text.stdout).toMatch(/^payload +\{"order":"o_7"\}$/m)
  const timeline = text.stdout.slice(text.stdout.indexOf('\ntimeline'))
  expect(timeline).toMatch(/^step reserve +\+\S+ +\S+ +█[█ ]* +→ \{"reserved":2\}$/m)
  expect(timeline).toMatch(/^sleep cool-off +\+\S+ +\S+ +░[░ ]* +slept until \S+Z$/m)
  expect(timeline).toMatch(new RegExp(`^wait approval +\\+\\S+ +\\S+ +░[░ ]* +waiting for an event, times out at ${timeoutAt}$`, 'm'))
  expect(document).toMatchObject({ id, status: 'waiting', job: 'checkout', payload: { order: 'o_7' }, result: null, rerunOf: null })
  expect(document.steps.map((step) => [step.id, step.kind, step.status])).toEqual([
    ['reserve', 'run', 'completed'],
    ['cool-off', 'sleep', 'completed'],
    ['approval', 'wait', 'waiting'],
  ])

  // events send resumes it; sending the same id again sends nothing.
  const sent = await json<{ id: string; resumedRuns: number; deduplicated: boolean }>([
    'events',
    'send',
    'show.approved',
    '--data',
    '{"order":"o_7","by":"grace"}',
    '--id',
    'approval-o_7',
  ])
  expect(sent).toEqual({ id: 'approval-o_7', name: 'show.approved', resumedRuns: 1, deduplicated: false })
  const again = await stackshift(['events', 'send', 'show.approved', '--data', '{"order":"o_7"}', '--id', 'approval-o_7'])
  expect(again).toMatchObject({ code: 0, stdout: 'sent event approval-o_7: already sent; nothing sent again\n' })
  expect(await client.waitForRun(id)).toMatchObject({ status: 'completed', result: { approvedBy: 'grace' } })

  const done = await stackshift(['runs', 'show', id])
  expect(done.stdout).toMatch(/^status +completed$/m)
  expect(done.stdout).toMatch(/^result +\{"approvedBy":"grace"\}$/m)
  expect(done.stdout).toMatch(/^wait approval .* got event show\.approved \(approval-o_7\)$/m)
  expect(done.stdout).toMatch(/^attempt 1 +\+\S+ +\S+ +[ █]+ +completed$/m)
  expect(done.stdout).toMatch(/^step charge .* → "charged"$/m)
})

it('runs show prints a parent with its children, and a child with its parent; runs list --parent-run lists the children', async () => {
  client.job('cliParent', async ({ step }) => {
    const [a, b] = await Promise.all([
      step.invoke<number>('double:0', { job: 'cliDouble', queue: 'cli-family', payload: 1, timeout: '1h' }),
      step.invoke<number>('double:1', { job: 'cliDouble', queue: 'cli-family', payload: 2, timeout: '1h' }),
    ])
    return a + b
  })
  client.job<number>('cliDouble', ({ payload }) => payload * 2)
  await startWorker('cli-family')
  const { id } = await client.queue('cli-family').enqueue('cliParent', {})
  const done = await client.waitForRun(id)
  expect(done.result).toBe(6)
  const [first, second] = done.children

  const parent = await stackshift(['runs', 'show', id])
  expect(parent.code).toBe(0)
  const children = parent.stdout.slice(parent.stdout.indexOf('\nchildren:\n'), parent.stdout.indexOf('\ntimeline'))
  expect(children).toMatch(/^ID +STEP +QUEUE +JOB +STATUS$/m)
  expect(children).toMatch(new RegExp(`^${first!.runId}  double:0  cli-family  cliDouble  completed$`, 'm'))
  expect(children).toMatch(new RegExp(`^${second!.runId}  double:1  cli-family  cliDouble  completed$`, 'm'))
  expect(parent.stdout).toMatch(new RegExp(`^invoke double:0 .* child run ${first!.runId} completed$`, 'm'))

  const child = await stackshift(['runs', 'show', first!.runId])
  expect(child.stdout).toMatch(new RegExp(`^origin +child of ${id} \\(step double:0\\)$`, 'm'))
  expect(child.stdout).not.toContain('children:')

  const listed = await json<ListedRuns>(['runs', 'list', '--parent-run', id])
  expect(ids(listed)).toEqual([first!.runId, second!.runId].sort())
})

it('runs cancel cancels an unfinished run; a finished one is refused (exit 1), an unknown one is not found (exit 3)', async () => {
  const { id } = await client.queue('cancel-me').enqueue('idle', {})
  const cancelled = await json<Run>(['runs', 'cancel', id, '--reason', 'not needed'])
  expect(cancelled).toMatchObject({ id, status: 'cancelled' })
  expect((await client.getRun(id)).status).toBe('cancelled')

  const unknown = randomUUID()
  const [again, missing, missingShow] = await Promise.all([
    stackshift(['runs', 'cancel', id]),
    stackshift(['runs', 'cancel', unknown, '--json']),
    stackshift(['runs', 'show', unknown]),
  ])
  expect(again).toMatchObject({ code: 1, stdout: '' })
  expect(again.stderr).toMatch(/^stackshift: FAILED_PRECONDITION: /)
  expect(missing).toMatchObject({ code: 3, stdout: '' })
  expect(missing.stderr).toMatch(/^stackshift: NOT_FOUND: /)
  expect(missingShow.code).toBe(3)
})

it('a read-only key lists runs but may not cancel one or write state: PERMISSION_DENIED, exit 1, nothing changed', async () => {
  const { id } = await client.queue('guarded').enqueue('idle', {})
  const asReader = { STACKSHIFT_API_KEY: readerKey }
  const [listed, cancel, write] = await Promise.all([
    json<ListedRuns>(['runs', 'list', '--queue', 'guarded'], asReader),
    stackshift(['runs', 'cancel', id], asReader),
    stackshift(['state', 'set', 'guarded', '1'], asReader),
  ])
  expect(ids(listed)).toEqual([id])
  expect(cancel).toMatchObject({ code: 1, stdout: '' })
  expect(cancel.stderr).toMatch(/^stackshift: PERMISSION_DENIED: .*"operate" scope/)
  expect(write.code).toBe(1)
  expect(write.stderr).toMatch(/^stackshift: PERMISSION_DENIED: /)
  expect((await client.getRun(id)).status).toBe('queued')
  expect(await client.state.get('guarded')).toBeUndefined()
})

it('state set, get and list: values as JSON, a TTL, a prefix; an absent key is exit 3', async () => {
  const setAt = Date.now()
  const [set, second] = await Promise.all([
    json<{ key: string; version: number }>(['state', 'set', 'flags/dark-mode', '{"on":true}', '--ttl', '1h']),
    // A value that starts with "-" goes after "--", where nothing is an option.
    stackshift(['state', 'set', 'flags/beta', '--json', '--', '-1']),
  ])
  expect(set).toEqual({ key: 'flags/dark-mode', version: 1 })
  expect(JSON.parse(second.stdout)).toEqual({ key: 'flags/beta', version: 1 })
  expect(await client.state.get('flags/beta')).toBe(-1)
  expect(await json<{ version: number }>(['state', 'set', 'flags/dark-mode', '{"on":false}'])).toMatchObject({ version: 2 })

  await client.state.set('other', 'x')
  const [entry, text, listed, listedText, absent] = await Promise.all([
    json<{ key: string; value: unknown; version: number; expiresAt: string | null }>(['state', 'get', 'flags/dark-mode']),
    stackshift(['state', 'get', 'flags/beta']),
    json<{ entries: Array<{ key: string; value: unknown }>; nextCursor: string | null }>(['state', 'list', '--prefix', 'flags/']),
    stackshift(['state', 'list', '--prefix', 'flags/', '--limit', '1']),
    stackshift(['state', 'get', 'flags/none']),
  ])
  expect(entry).toMatchObject({ key: 'flags/dark-mode', value: { on: false }, version: 2, expiresAt: null })
  expect(text.stdout).toMatch(/^value +-1$/m)
  expect(text.stdout).toMatch(/^expires +never$/m)
  expect(listed.entries.map((listedEntry) => [listedEntry.key, listedEntry.value])).toEqual([
    ['flags/beta', -1],
    ['flags/dark-mode', { on: false }],
  ])
  expect(listedText.stdout).toMatch(/^KEY +VERSION +UPDATED +EXPIRES +VALUE\nflags\/beta +1 +\S+Z +never +-1\n$/)
  expect(listedText.stderr).toMatch(/^more: add --cursor \S+ \(or --all\)\n$/)
  expect(absent).toMatchObject({ code: 3, stdout: '', stderr: 'stackshift: NOT_FOUND: no State Store entry "flags/none"\n' })

  // The TTL of the first write: an hour from when it was set (the second write kept no TTL).
  const withTtl = await json<{ expiresAt: string }>(['state', 'set', 'ttl-check', '1', '--ttl', '1h']).then(() =>
    json<{ expiresAt: string }>(['state', 'get', 'ttl-check']),
  )
  expect(Date.parse(withTtl.expiresAt) - setAt).toBeGreaterThan(3_590_000)
  expect(Date.parse(withTtl.expiresAt) - Date.now()).toBeLessThan(3_600_000)
})

it('--namespace, else STACKSHIFT_NAMESPACE, picks the namespace a command acts in', async () => {
  const billing = new StackShift({ address: server.address, apiKey: adminKey, namespace: 'billing' })
  try {
    const { id } = await billing.queue('invoices').enqueue('issue', {})
    const [byFlag, byEnv, flagOverEnv, byDefault] = await Promise.all([
      json<ListedRuns>(['runs', 'list', '--queue', 'invoices', '--namespace', 'billing']),
      json<ListedRuns>(['runs', 'list', '--queue', 'invoices'], { STACKSHIFT_NAMESPACE: 'billing' }),
      json<ListedRuns>(['runs', 'list', '--queue', 'invoices', '--namespace', 'default'], { STACKSHIFT_NAMESPACE: 'billing' }),
      json<ListedRuns>(['runs', 'list', '--queue', 'invoices']),
    ])
    expect(ids(byFlag)).toEqual([id])
    expect(ids(byEnv)).toEqual([id])
    expect(flagOverEnv.runs).toEqual([])
    expect(byDefault.runs).toEqual([])
  } finally {
    billing.close()
  }
})

it('a usage error exits 2, says what is wrong, and sends nothing', async () => {
  const { id } = await client.queue('usage').enqueue('idle', {})
  const results = await Promise.all(
    [
      ['runs', 'cancel', id, '--status', 'queued'],
      ['runs', 'cancel'],
      ['runs', 'cancel', id, 'extra'],
      ['runs', 'list', '--status', 'done'],
      ['runs', 'list', '--limit', '0'],
      ['runs', 'list', '--payload-match', '[1]'],
      ['runs', 'list', '--created-after', 'yesterday'],
      ['runs', 'lsit'],
      ['runs', 'list', '--queue'],
      ['state', 'set', 'k', '{oops}'],
      ['state', 'set', 'k', '1', '--ttl', 'soon'],
      ['events', 'send', 'x', '--data', 'nope'],
    ].map((args) => stackshift(args)),
  )
  expect(results.map((result) => [result.code, result.stdout, result.stderr.split('\n')[0]])).toEqual([
    [2, '', 'stackshift: runs cancel does not take --status'],
    [2, '', 'stackshift: runs cancel needs <id>'],
    [2, '', 'stackshift: runs cancel: unexpected "extra"'],
    [2, '', 'stackshift: --status "done" is not one of queued, running, waiting, completed, failed, cancelled'],
    [2, '', 'stackshift: --limit must be a whole number from 1 to 500'],
    [2, '', `stackshift: --payload-match must be a JSON object, e.g. '{"customer":"c_1"}'`],
    [2, '', expect.stringContaining('stackshift: --created-after "yesterday" is neither a time')],
    [2, '', 'stackshift: unknown command "runs lsit"'],
    [2, '', expect.stringContaining("stackshift: Option '--queue <value>' argument missing")],
    [2, '', expect.stringContaining('stackshift: the value is not JSON')],
    [2, '', 'stackshift: --ttl "soon" is not a duration (e.g. 500ms, 30s, 10m, 1h30m, 7d)'],
    [2, '', expect.stringContaining('stackshift: --data is not JSON')],
  ])
  expect(results[0]!.stderr).toContain('see "stackshift runs --help"')
  expect((await client.getRun(id)).status).toBe('queued')
  expect(await client.state.get('k')).toBeUndefined()
})
