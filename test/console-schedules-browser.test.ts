import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { StackShift, type Worker } from '@stackshift/sdk'
import { type Browser, type Page, chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase } from './support/database.js'
import { type TestServer, startTestServer } from './support/server.js'
import { waitUntil } from './support/wait-until.js'

/*
 * The console's Schedules page in a real browser (Debian's Chromium through
 * playwright-core), against a server whose schedules fired runs a worker
 * executed. The page is saved as test/artifacts/console/schedules.png.
 */

const chromiumPath = process.env.STACKSHIFT_TEST_CHROMIUM ?? '/usr/bin/chromium'
const artifacts = fileURLToPath(new URL('./artifacts/console/', import.meta.url))

let server: TestServer
let stackshift: StackShift
let worker: Worker
let browser: Browser
let page: Page
let base: string

describe.skipIf(!existsSync(chromiumPath) && !process.env.CI)('the Schedules page in a browser', () => {
  beforeAll(async () => {
    server = await startTestServer(await createTestDatabase(), { auth: 'off' })
    base = `http://127.0.0.1:${server.server.consolePort!}`
    stackshift = new StackShift({ address: server.address })
    stackshift.job('buildReport', () => ({ pages: 12 }))
    worker = stackshift.worker({ queues: ['reports'] })
    await worker.start()
    await stackshift.schedules.create({
      id: 'nightly-report',
      cron: '0 2 * * *',
      timezone: 'Europe/Paris',
      queue: 'reports',
      job: 'buildReport',
      payload: { kind: 'daily' },
      overlap: 'skip',
      catchupWindow: '1h',
      paused: true,
    })
    await stackshift.schedules.backfill('nightly-report', { from: new Date(Date.now() - 3 * 86_400_000), to: new Date() })
    await waitUntil(
      () => stackshift.schedules.get('nightly-report'),
      (schedule) => schedule.recentRuns.length === 3 && schedule.recentRuns.every((run) => run.status === 'completed'),
    )
    await stackshift.schedules.create({
      id: 'hourly-sync',
      cron: '15 * * * *',
      queue: 'reports',
      job: 'buildReport',
      overlap: 'buffer_one',
    })

    await mkdir(artifacts, { recursive: true })
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
    page = await (await browser.newContext({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 })).newPage()
  }, 90_000)

  afterAll(async () => {
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

  const card = (id: string) => page.getByRole('region', { name: `Schedule ${id}` })

  it('lists each schedule with its next five fire times, its paused state and its last runs, linked to them', async () => {
    await page.goto(`${base}/runs`)
    await page.getByRole('link', { name: 'Schedules' }).click()
    await page.getByRole('heading', { name: 'Schedules' }).waitFor()
    await card('hourly-sync').waitFor()
    expect(await page.getByText('2 schedules · 1 paused').count()).toBe(1)

    const nightly = card('nightly-report')
    expect(await nightly.innerText()).toMatch(/paused[\s\S]*0 2 \* \* \*[\s\S]*Europe\/Paris[\s\S]*buildReport on reports[\s\S]*skip/)
    expect(await nightly.locator('.schedule-ticks li').count()).toBe(5)
    // Each tick says what it is in the schedule's zone: 02:00 in Paris.
    expect(await nightly.locator('.schedule-ticks li').first().getAttribute('title')).toMatch(/\b0?2:00(\s*AM)? in Europe\/Paris$/)
    expect(await nightly.locator('.schedule-runs li').count()).toBe(3)
    expect(await card('hourly-sync').innerText()).toMatch(/active[\s\S]*buffer one/)
    await page.screenshot({ path: `${artifacts}schedules.png`, fullPage: true })

    const [newest] = (await stackshift.schedules.get('nightly-report')).recentRuns
    await nightly.locator('.schedule-runs a').first().click()
    await page.waitForURL(`${base}/runs/${newest!.runId}`)
    await page.getByRole('heading', { name: /buildReport/ }).waitFor()
  })

  it('resumes, pauses and triggers a schedule from its buttons', async () => {
    await page.goto(`${base}/schedules`)
    const nightly = card('nightly-report')
    await nightly.getByRole('button', { name: 'Resume' }).click()
    await nightly.getByRole('button', { name: 'Pause' }).waitFor()
    expect((await stackshift.schedules.get('nightly-report')).paused).toBe(false)
    await nightly.getByRole('button', { name: 'Pause' }).click()
    await nightly.getByRole('button', { name: 'Resume' }).waitFor()
    expect((await stackshift.schedules.get('nightly-report')).paused).toBe(true)

    await card('hourly-sync').getByRole('button', { name: 'Trigger now' }).click()
    await page.waitForURL(/\/runs\/[0-9a-f-]{36}$/)
    const runId = decodeURIComponent(page.url().split('/').at(-1)!)
    expect(await stackshift.getRun(runId)).toMatchObject({ scheduleId: 'hourly-sync' })
  })
})
