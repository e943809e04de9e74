import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { Check } from './checks.js'
import type { FaultRecord } from './faults.js'
import type { Profile } from './profile.js'
import type { Fault, FaultKind } from './schedule.js'

/** Everything a run reports: what was asked, what was done, and the verdict. */
export interface ChaosReport {
  seed: number
  profile: Profile
  startedAt: string
  /** From the first fault's planned start to the end of the checks. */
  durationMs: number
  /** Time from the last fault to every acknowledged run finished. */
  drainMs: number
  faultCounts: Partial<Record<FaultKind, number>>
  schedule: Fault[]
  /** Planned faults not injected: the long profile's time was up (faults take longer than planned on a busy machine). */
  skipped: Fault[]
  faults: FaultRecord[]
  workload: {
    enqueued: number
    acknowledged: number
    enqueueCalls: number
    waitsSampled: number
    /** Failed calls of the driver, `<call> <CODE>` -> count. */
    failedCalls: Record<string, number>
    /** Calls that threw inside the job's handlers (other than to suspend), `<call> <error name>` -> count. */
    handlerErrors: Record<string, number>
  }
  checks: Check[]
  isPassed: boolean
  /** Where the processes' logs were kept (only when the run failed or was asked to keep them). */
  logDir?: string
}

/** The checks as a text table, one line each. */
export function formatChecks(checks: readonly Check[]): string {
  const header = { name: 'check', value: 'result', expected: 'expected', mark: 'ok' }
  const rows = checks.map((c) => ({ name: c.name, value: c.value, expected: c.expected, mark: c.isPassed ? 'yes' : 'NO' }))
  const width = (key: keyof typeof header) => Math.max(header[key].length, ...rows.map((row) => row[key].length))
  const widths = { name: width('name'), value: width('value'), expected: width('expected') }
  const line = (row: typeof header) =>
    `${row.name.padEnd(widths.name)}  ${row.value.padEnd(widths.value)}  ${row.expected.padEnd(widths.expected)}  ${row.mark}`
  return [
    line(header),
    line({ name: '-'.repeat(widths.name), value: '-'.repeat(widths.value), expected: '-'.repeat(widths.expected), mark: '--' }),
    ...rows.map(line),
  ].join('\n')
}

/** The checks as a Markdown table (docs/chaos.md quotes one). */
export function formatChecksMarkdown(checks: readonly Check[]): string {
  const escape = (text: string) => text.replaceAll('|', '\\|')
  return [
    '| check | result | expected | ok |',
    '| --- | --- | --- | --- |',
    ...checks.map((c) => `| ${escape(c.name)} | ${escape(c.value)} | ${escape(c.expected)} | ${c.isPassed ? 'yes' : '**no**'} |`),
  ].join('\n')
}

/** `bench/results/chaos-2026-12-07T10-15-00.json`, relative to the repository. */
export function defaultReportPath(repoRoot: string, startedAt: Date): string {
  return `${repoRoot}bench/results/chaos-${startedAt.toISOString().slice(0, 19).replaceAll(':', '-')}.json`
}

export async function writeReport(path: string, report: ChaosReport): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  await writeFile(path, JSON.stringify(report, null, 2) + '\n')
}
