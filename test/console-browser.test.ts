import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { trace } from '@opentelemetry/api'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { NonRetriableError, StackShift, type Worker } from '@stackshift/sdk'
import { type Browser, type BrowserContext, type Page, chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase } from './support/database.js'
import { type TestServer, startTestServer } from './support/server.js'
import { waitUntil } from './support/wait-until.js'

/*
 * The web console in a real browser: Debian's Chromium, driven by
 * playwright-core, against a server and SDK workers running real jobs. Each
 * page is saved as a screenshot under test/artifacts/console/ (not
 * committed) for people to look at. console-run.png there is the picture
 * the README shows: copy it to docs/images/ when the run page changes.
 */

const chromiumPath = process.env.STACKSHIFT_TEST_CHROMIUM ?? '/usr/bin/chromium'
const artifacts = fileURLToPath(new URL('./artifacts/console/', import.meta.url))
const adminKey = 'test-admin-key-0123456789abcdefghijklmnop'

let server: TestServer
let stackshift: StackShift
let worker: Worker
let browser: Browser
let operator: BrowserContext
let page: Page
let base: string
let readKey: string
let checkoutTraceId = ''
/** How often each step of the checkout job ran its function. */
const executions = new Map<string, number>()
const runs: Record<'checkout' | 'flaky' | 'nap' | 'payment' | 'paidLater' | 'syncing' | 'heldBack', string> = {
  checkout: '',
  flaky: '',
  nap: '',
  payment: '',
  paidLater: '',
  syncing: '',
  heldBack: '',
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const counted = async <T>(id: string, ms: number, value: T): Promise<T> => {
  executions.set(id, (executions.get(id) ?? 0) + 1)
  await sleep(ms)
  return value
}

// Without Chromium the browser tests are skipped, except in CI (.ci/run installs it).
describe.skipIf(!existsSync(chromiumPath) && !process.env.CI)('the web console in a browser', () => {
  beforeAll(async () => {
    server = await startTestServer(await createTestDatabase(), {
      auth: 'required',
      adminKey,
      consoleTraceUrl: 'http://localhost:16686/trace/{traceId}',
    })
    base = `http://127.0.0.1:${server.server.consolePort!}`
    stackshift = new StackShift({ address: server.address, apiKey: adminKey })
    readKey = (await stackshift.admin.createApiKey({ namespace: 'default', scopes: ['read'], name: 'viewer' })).secret

    stackshift.job<{ orderId: string }>('checkout', async ({ payload, step, state }) => {
      const reserved = await step.run('reserve-stock', () => counted('reserve-stock', 120, { items: 3 }))
      const charged = await step.run('charge-card', () => counted('charge-card', 260, { amount: 4200, currency: 'EUR' }))
      await state.increment('orders-today', 1)
      await step.run('send-receipt', () => counted('send-receipt', 90, { to: `${payload.orderId}@example.com` }))
      return { orderId: payload.orderId, ...reserved, ...charged }
    })
    stackshift.job('flaky', async ({ step }) => {
      await step.run('call-gateway', () => sleep(40))
      throw new NonRetriableError('payment gateway answered 502 Bad Gateway')
    })
    stackshift.job('nap', async ({ step }) => {
      await step.run('prepare', () => sleep(30))
      await step.sleep('cool-down', '1h')
    })
    stackshift.job<{ orderId: string }>('awaitPayment', async ({ payload, step }) => {
      await step.run('create-invoice', () => sleep(50))
      return step.waitForEvent('payment', { event: 'payment.confirmed', match: { orderId: payload.orderId }, timeout: '1h' })
    })
    // At most one run per customer: the second waits for the first, which holds its slot until the worker stops.
    stackshift.job<{ customerId: string }>('syncCustomer', { concurrency: { limit: 1, key: 'customerId' } }, ({ signal }) => {
      return new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
    })
    worker = stackshift.worker({ queues: ['orders', 'maintenance', 'crm'] })
    await worker.start()

    const orders = stackshift.queue('orders')
    // Enqueued inside a span, as an application handling a request would: the run carries its trace.
    new NodeTracerProvider().register()
    runs.checkout = await trace.getTracer('console-test').startActiveSpan('POST /checkout', async (span) => {
      checkoutTraceId = span.spanContext().traceId
      try {
        return (await orders.enqueue('checkout', { orderId: 'A-1001' })).id
      } finally {
        span.end()
      }
    })
    runs.flaky = (await orders.enqueue('flaky', { orderId: 'A-1002' })).id
    runs.nap = (await stackshift.queue('maintenance').enqueue('nap', {})).id
    runs.payment = (await orders.enqueue('awaitPayment', { orderId: 'A-1003' })).id
    runs.paidLater = (await orders.enqueue('awaitPayment', { orderId: 'A-1004' })).id
    runs.syncing = (await stackshift.queue('crm').enqueue('syncCustomer', { customerId: 'acme' })).id
    runs.heldBack = (await stackshift.queue('crm').enqueue('syncCustomer', { customerId: 'acme' })).id
    // Not ready for an hour: what the bulk cancel below selects.
    for (const week of [1, 2, 3]) await stackshift.queue('reports').enqueue('weeklyDigest', { week }, { delay: '1h' })
    await stackshift.waitForRun(runs.checkout)
    await stackshift.waitForRun(runs.flaky)
    await waitUntil(
      () => stackshift.getRun(runs.nap),
      (run) => run.status === 'waiting',
    )
    await waitUntil(
      () => stackshift.getRun(runs.payment),
      (run) => run.status === 'waiting',
    )
    await waitUntil(
      () => stackshift.getRun(runs.paidLater),
      (run) => run.status === 'waiting',
    )

    await mkdir(artifacts, { recursive: true })
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
    operator = await browser.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 })
    page = await operator.newPage()
    await signIn(page, adminKey)
  }, 90_000)

  afterAll(async () => {
    // beforeAll may have failed before making some of these.
    const made: { browser?: Browser; worker?: Worker; stackshift?: StackShift; server?: TestServer } = {
      browser,
      worker,
      stackshift,
      server,
    }
    await made.browser?.close()
    await made.worker?.stop()
    made.stackshift?.close()
    await made.server?.stop()
  })

  /** Opens the console and signs in with `key`. */
  async function signIn(target: Page, key: string): Promise<void> {
    await target.goto(`${base}/runs`)
    await target.getByLabel('API key').fill(key)
    await target.getByRole('button', { name: 'Sign in' }).click()
    await target.getByRole('heading', { name: 'Runs' }).waitFor()
  }

  const shoot = (target: Page, name: string) => target.screenshot({ path: `${artifacts}${name}.png`, fullPage: true })
  const rowsOf = (target: Page, table: string) => target.getByRole('table', { name: table }).locator('tbody tr')

  it('lists the runs newest first, and filters them by status and job', async () => {
    const rows = rowsOf(page, 'Runs')
    await expect.poll(() => rows.count()).toBe(10)
    // Newest first: the last enqueued (the digests) on top.
    expect(await rows.first().innerText()).toContain('weeklyDigest')
    expect(await rows.last().innerText()).toContain('checkout')
    await shoot(page, 'runs')

    await page.getByLabel('Status').selectOption('failed')
    await expect.poll(() => rows.count()).toBe(1)
    expect(await rows.first().innerText()).toContain('flaky')
    expect(page.url()).toContain('status=failed')

    await page.getByLabel('Status').selectOption('')
    await page.getByLabel('Job').fill('nap')
    await page.getByRole('button', { name: 'Apply' }).click()
    await expect.poll(() => rows.count()).toBe(1)
    expect(await rows.first().innerText()).toContain('maintenance')
    await page.getByRole('button', { name: 'Clear' }).click()
    await expect.poll(() => rows.count()).toBe(10)
  })

  it("shows a run's steps in order with their durations, its State operations and its result", async () => {
    await rowsOf(page, 'Runs').filter({ hasText: 'checkout' }).click()
    await page.waitForURL(`**/runs/${runs.checkout}`)
    const steps = page.locator('.timeline-row[data-step-id]')
    await expect.poll(() => steps.count()).toBe(4)
    const ids = await steps.evaluateAll((rows: Array<{ getAttribute(name: string): string | null }>) =>
      rows.map((row) => row.getAttribute('data-step-id')),
    )
    expect(ids).toEqual(['reserve-stock', 'charge-card', 'state.increment:orders-today', 'send-receipt'])
    // Each bar is labelled with its duration; charge-card slept 260 ms inside its function.
    const chargeDetail = await steps.nth(1).locator('.bar-detail').innerText()
    expect(chargeDetail).toMatch(/^\d+ ms$/)
    expect(Number.parseInt(chargeDetail)).toBeGreaterThanOrEqual(250)
    expect(await page.getByRole('table', { name: 'State operations' }).innerText()).toContain('state.increment:orders-today')
    expect(await page.getByLabel('Result').innerText()).toContain('"amount": 4200')
    expect(await page.getByRole('link', { name: /↗/ }).getAttribute('href')).toBe(`http://localhost:16686/trace/${checkoutTraceId}`)
    await shoot(page, 'run')
    await page.screenshot({ path: `${artifacts}console-run.png`, fullPage: false })
  })

  it('shows a failed run with its error and stack, and a sleeping run with what it waits for', async () => {
    await page.goto(`${base}/runs/${runs.flaky}`)
    await page.getByText('payment gateway answered 502 Bad Gateway').first().waitFor()
    expect(await page.locator('.code-error').innerText()).toMatch(/NonRetriableError|at /)
    await shoot(page, 'run-failed')
    await page.goto(`${base}/runs/${runs.nap}`)
    const coolDown = page.locator('.timeline-row[data-step-id="cool-down"]')
    expect(await coolDown.locator('.bar-detail').innerText()).toMatch(/^sleeping until /)
    await shoot(page, 'run-sleeping')
  })

  it('shows a run held back by a concurrency limit: the run says which, and the runs list marks it', async () => {
    await waitUntil(
      () => stackshift.getRun(runs.heldBack),
      (run) => run.flowWait !== undefined,
    )
    await page.goto(`${base}/runs/${runs.heldBack}`)
    const wait = page.locator('.flow-wait')
    expect(await wait.innerText()).toBe('waiting for concurrency customerId=acme: 1 of 1 running')
    expect(await page.getByText(/no attempt yet: the run is waiting for its flow-control limit/i).count()).toBe(1)
    await shoot(page, 'run-flow-wait')
    await page.goto(`${base}/runs?job=syncCustomer`)
    const mark = page.locator('.flow-wait-mark')
    await mark.first().waitFor()
    expect(await mark.count()).toBe(1)
    expect(await mark.getAttribute('title')).toBe('waiting for concurrency customerId=acme: 1 of 1 running')
    await shoot(page, 'runs-flow-wait')
  })

  it('replays a run from a step: the new run completes with the earlier steps memoized', async () => {
    await page.goto(`${base}/runs/${runs.checkout}`)
    const before = { reserve: executions.get('reserve-stock'), charge: executions.get('charge-card') }
    await page.locator('.timeline-row[data-step-id="charge-card"]').getByRole('button', { name: 'Replay from here' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Replay' }).click()
    await page.waitForURL((url) => url.pathname.startsWith('/runs/') && !url.pathname.endsWith(runs.checkout))
    const replayId = new URL(page.url()).pathname.split('/').pop()!
    await page
      .getByRole('heading', { name: /checkout/ })
      .locator('.badge-completed')
      .waitFor()
    // reserve-stock came from the source run's memo; charge-card and what follows ran again.
    expect(executions.get('reserve-stock')).toBe(before.reserve)
    expect(executions.get('charge-card')).toBe(before.charge! + 1)
    const replay = await stackshift.getRun(replayId)
    expect(replay.status).toBe('completed')
    expect(replay.steps.map((step) => step.id)).toEqual(['reserve-stock', 'charge-card', 'state.increment:orders-today', 'send-receipt'])
    expect(await page.locator('.timeline-row[data-step-id="reserve-stock"] .bar-detail').innerText()).toMatch(/^memoized/)
    expect(await page.getByText('Replay of').count()).toBe(1)
    await shoot(page, 'run-replay')
    // The source links to the run made from it.
    await page.goto(`${base}/runs/${runs.checkout}`)
    await page.getByRole('heading', { name: 'Runs made from this run' }).waitFor()
  })

  it('cancels a waiting run', async () => {
    await page.goto(`${base}/runs/${runs.payment}`)
    const payment = page.locator('.timeline-row[data-step-id="payment"]')
    expect(await payment.locator('.bar-detail').innerText()).toMatch(
      /^waiting for payment\.confirmed matching \{"orderId": "A-1003"\} · times out /,
    )
    await shoot(page, 'run-waiting')
    await page.getByRole('button', { name: 'Cancel run' }).click()
    await page
      .getByRole('dialog')
      .getByLabel(/Reason/)
      .fill('customer abandoned the order')
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel run' }).click()
    await page
      .getByRole('heading', { name: /awaitPayment/ })
      .locator('.badge-cancelled')
      .waitFor()
    expect((await stackshift.getRun(runs.payment)).status).toBe('cancelled')
    await shoot(page, 'run-cancelled')
  })

  it('sends an event from the events page, and lists it with the run it resumed', async () => {
    await page.goto(`${base}/events`)
    await page.getByRole('button', { name: 'Send event…' }).click()
    const form = page.getByRole('form', { name: 'Send event' })
    await form.getByLabel('Name').fill('payment.confirmed')
    await form.getByLabel('Data (JSON)').fill('{"orderId": "A-1004", "amount": 4200}')
    await form.getByRole('button', { name: 'Send' }).click()
    expect(await form.getByRole('status').innerText()).toContain('It resumed 1 waiting run')
    const delivery = page.getByRole('table', { name: 'Events' }).getByRole('link', { name: /payment/ })
    await delivery.waitFor()
    expect(await delivery.getAttribute('href')).toBe(`/runs/${runs.paidLater}`)
    await stackshift.waitForRun(runs.paidLater)
    await shoot(page, 'events')
    await delivery.click()
    const payment = page.locator('.timeline-row[data-step-id="payment"] .bar-detail')
    await expect.poll(() => payment.innerText()).toBe('received event payment.confirmed')
  })

  it('counts the runs a filter selects, then cancels them in bulk, and follows the progress', async () => {
    await page.goto(`${base}/runs?job=weeklyDigest`)
    await expect.poll(() => rowsOf(page, 'Runs').count()).toBe(3)
    await page.getByRole('button', { name: 'Bulk action…' }).click()
    const dialog = page.getByRole('dialog')
    await dialog.getByRole('button', { name: 'Count runs (dry run)' }).click()
    expect(await dialog.getByRole('status').innerText()).toContain('3 runs would be cancelled')
    await shoot(page, 'bulk-action-count')
    await dialog.getByRole('button', { name: 'Start cancel' }).click()
    const progress = dialog.getByRole('status', { name: 'Bulk action progress' })
    await expect.poll(() => progress.innerText(), { timeout: 20_000 }).toContain('3 handled')
    await progress.locator('.badge-completed').waitFor()
    const digests = (await stackshift.listRuns({ job: 'weeklyDigest' })).runs
    expect(digests.map((run) => run.status)).toEqual(['cancelled', 'cancelled', 'cancelled'])
    await dialog.getByRole('button', { name: 'Close' }).click()
    await page.goto(`${base}/bulk-actions`)
    await rowsOf(page, 'Bulk actions').first().waitFor()
    expect(await rowsOf(page, 'Bulk actions').first().innerText()).toMatch(/cancel[\s\S]*job weeklyDigest[\s\S]*completed/)
    await shoot(page, 'bulk-actions')
  })

  it('shows queues, workers and State entries', async () => {
    await page.goto(`${base}/queues`)
    await page.getByRole('region', { name: 'Queue orders' }).waitFor()
    // Let the depth chart gather a second sample.
    await sleep(5500)
    expect(await page.getByRole('region', { name: 'Queue maintenance' }).innerText()).toMatch(/1\s*waiting/)
    await shoot(page, 'queues')

    await page.goto(`${base}/workers`)
    const workerRow = rowsOf(page, 'Workers').first()
    await workerRow.waitFor()
    expect(await workerRow.innerText()).toMatch(/orders[\s\S]*maintenance[\s\S]*checkout/)
    await shoot(page, 'workers')

    await page.goto(`${base}/state`)
    await rowsOf(page, 'State entries').filter({ hasText: 'orders-today' }).click()
    const entry = page.getByRole('region', { name: 'State entry' })
    await entry.getByText('Version').waitFor()
    expect(await entry.innerText()).toMatch(/Version\s*2[\s\S]*TTL\s*none/)
    await shoot(page, 'state')
  })

  it("shows a parent's child runs with their status, each linked, and a child's parent", async () => {
    stackshift.job<{ urls: string[] }>('publishAlbum', async ({ payload, step }) =>
      Promise.all(
        payload.urls.map((url, i) =>
          step.invoke(`thumbnail:${i}`, { job: 'resizeImage', queue: 'albums', payload: { url }, timeout: '1h' }),
        ),
      ),
    )
    stackshift.job<{ url: string }>('resizeImage', async ({ payload }) => {
      await sleep(60)
      if (payload.url === 'broken.png') throw new NonRetriableError('cannot decode broken.png')
      return `${payload.url}?w=200`
    })
    const albums = stackshift.worker({ queues: ['albums'], jobs: ['publishAlbum', 'resizeImage'] })
    await albums.start()
    try {
      const { id } = await stackshift.queue('albums').enqueue('publishAlbum', { urls: ['a.png', 'b.png', 'broken.png'] })
      const parent = await stackshift.waitForRun(id)
      expect(parent).toMatchObject({ status: 'failed', error: { name: 'ChildRunFailedError' } })

      await page.goto(`${base}/runs/${id}`)
      const children = rowsOf(page, 'Child runs')
      await expect.poll(() => children.count()).toBe(3)
      expect(await children.nth(0).innerText()).toMatch(/thumbnail:0\s+resizeImage\s+albums\s+completed/)
      expect(await children.nth(2).innerText()).toMatch(/thumbnail:2\s+resizeImage\s+albums\s+failed/)
      expect(await page.locator('.timeline-row[data-step-id="thumbnail:2"] .bar-detail').innerText()).toBe('child run failed')
      await shoot(page, 'run-children')

      const broken = parent.children[2]!
      await children.nth(2).getByRole('link').click()
      await page.waitForURL(`**/runs/${broken.runId}`)
      await page.getByText('cannot decode broken.png').first().waitFor()
      await shoot(page, 'run-child')
      await page
        .locator('.facts')
        .getByRole('link', { name: `…${id.slice(-12)}` })
        .click()
      await page.waitForURL(`**/runs/${id}`)
      // The runs list filtered to the parent's children.
      await page.getByRole('link', { name: 'all in the runs list →' }).click()
      await page.waitForURL(`**/runs?parent=${id}`)
      await expect.poll(() => rowsOf(page, 'Runs').count()).toBe(3)
      expect(await rowsOf(page, 'Runs').first().innerText()).toContain('child of')
    } finally {
      await albums.stop()
    }
  })

  it('gives a read-only key no action buttons, and the server refuses the action all the same', async () => {
    const viewer = await browser.newContext({ viewport: { width: 1440, height: 900 } })
    try {
      const viewerPage = await viewer.newPage()
      await signIn(viewerPage, readKey)
      await viewerPage.goto(`${base}/runs/${runs.nap}`)
      await viewerPage.getByRole('heading', { name: /nap/ }).waitFor()
      await viewerPage.getByText('read-only').waitFor()
      expect(await viewerPage.getByRole('button', { name: /Cancel run|Rerun|Replay/ }).count()).toBe(0)
      expect(await viewerPage.getByRole('button', { name: 'Bulk action…' }).count()).toBe(0)
      await shoot(viewerPage, 'run-read-only')
      const refused = await viewerPage.evaluate(
        async ({ runId, key }) => {
          const response = await fetch('/stackshift.jobs.v1.RunService/CancelRun', {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
            body: JSON.stringify({ runId }),
          })
          return { status: response.status, body: (await response.json()) as { code: string } }
        },
        { runId: runs.nap, key: readKey },
      )
      expect(refused).toMatchObject({ status: 403, body: { code: 'permission_denied' } })
      expect((await stackshift.getRun(runs.nap)).status).toBe('waiting')
    } finally {
      await viewer.close()
    }
  })
})
