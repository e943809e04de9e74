import { writeFile } from 'node:fs/promises'
import type { WorkloadSizes } from '../workloads.js'
import { type LatencySummary, type Spread, spread } from './stats.js'

/** What the report's header states about a benchmark: the machine, the code and the settings run.ts used. */
export interface BenchEnvironment {
  machine: string
  node: string
  commit: string
  /** The server version (`version`) and the effective values of the fixed settings. */
  postgres: Record<string, string>
  versions: Record<string, string>
  concurrency: number
  poolSize: number
  tuning: Record<string, string>
  sizes: WorkloadSizes
  repeat: number
}

/** One run of one workload by one system. */
export interface RunRecord {
  system: string
  workload: string
  rep: number
  result: Record<string, unknown> & { jobs: number }
  commitsPerJob: number
  cpuSecondsPer1000Jobs: number
  cpuSeconds: { postgres: number; server: number; worker: number }
}

const integerFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })
const integer = (n: number) => integerFormat.format(n)
const decimal = (digits: number) => {
  const format = new Intl.NumberFormat('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
  return (n: number) => format.format(n)
}

function cell(values: readonly number[], format: (n: number) => string): string {
  const s: Spread = spread(values)
  return values.length === 1 ? format(s.median) : `${format(s.median)} (${format(s.min)}–${format(s.max)})`
}

function bySystem(records: readonly RunRecord[], workload: string): Map<string, RunRecord[]> {
  const groups = new Map<string, RunRecord[]>()
  for (const record of records.filter((r) => r.workload === workload)) {
    groups.set(record.system, [...(groups.get(record.system) ?? []), record])
  }
  return groups
}

const cost = (runs: readonly RunRecord[]) => [
  cell(
    runs.map((r) => r.commitsPerJob),
    decimal(3),
  ),
  cell(
    runs.map((r) => r.cpuSecondsPer1000Jobs),
    decimal(3),
  ),
]

const capped = (runs: readonly RunRecord[]) => (runs.some((r) => r.result.isCapped) ? ' ⏱' : '')

/** The Markdown tables: medians with (min–max) over the repetitions. */
export function renderMarkdown(environment: BenchEnvironment, records: readonly RunRecord[]): string {
  const sizes = environment.sizes
  const lines: string[] = []
  const postgres = environment.postgres
  lines.push(
    `Machine: ${environment.machine}. Code: commit ${environment.commit}. Node ${environment.node}. PostgreSQL ${postgres.version} (${Object.entries(
      postgres,
    )
      .filter(([k]) => k !== 'version')
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}).`,
    `Versions: ${Object.entries(environment.versions)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}. Concurrency ${environment.concurrency}, database pool ${environment.poolSize}. ` +
      `Each cell: median (min–max) of ${environment.repeat} runs, each on a fresh database; ` +
      `the repetitions are interleaved (each runs every system's workloads in turn, W4 right after W1). ⏱ = capped at ${sizes.drainCapSeconds} s, rate reached so far. ` +
      `Commits per job and CPU-seconds per 1,000 jobs cover the whole workload (enqueue included), summed over PostgreSQL, the StackShift server and the worker process.`,
    `Tuning (opt-in, README "Tuning"): ${Object.entries(environment.tuning)
      .map(([system, applied]) => `${system}: ${applied}`)
      .join('; ')}. The peers run as their variant says (default or tuned).`,
    '',
  )
  const w1 = bySystem(records, 'W1')
  const drainTable = (runsBySystem: Map<string, RunRecord[]>, title: string) => {
    if (runsBySystem.size === 0) return
    lines.push(title, '')
    lines.push('| system | enqueue runs/s | drain runs/s | commits/job | CPU-s / 1,000 jobs |', '| --- | ---: | ---: | ---: | ---: |')
    for (const [system, runs] of runsBySystem) {
      lines.push(
        `| ${system} | ${cell(
          runs.map((r) => r.result.enqueuePerSecond as number),
          integer,
        )} | ${cell(
          runs.map((r) => r.result.drainPerSecond as number),
          integer,
        )}${capped(runs)} | ${cost(runs).join(' | ')} |`,
      )
    }
    lines.push('')
  }
  drainTable(w1, `**W1 drain** — ${integer(sizes.drainRuns)} no-op runs, bulk-enqueued, then drained`)
  drainTable(
    bySystem(records, 'W1S'),
    '**W1S drain with statistics** — W1 with `ANALYZE` between enqueue and drain (a table autovacuum has seen; a freshly bulk-loaded table has no statistics yet)',
  )
  drainTable(
    bySystem(records, 'W1P'),
    '**W1P drain under a policy** — W1 with a job-wide concurrency limit of 10,000 on the job, so every run goes through the flow claim',
  )
  const w5 = bySystem(records, 'W5')
  if (w5.size > 0) {
    lines.push(
      `**W5 flow control** — ${integer(sizes.flowRuns)} no-op runs over ${integer(sizes.flowKeys)} keys, concurrency 2 per key and fairness, bulk-enqueued, then drained`,
      '',
    )
    lines.push(
      '| system | enqueue runs/s | drain runs/s | share of W1 drain (same repetition) | commits/job | CPU-s / 1,000 jobs |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
    )
    for (const [system, runs] of w5) {
      const shares = runs.flatMap((run) => {
        const w1Run = w1.get(system)?.find((r) => r.rep === run.rep)
        return w1Run ? [((run.result.drainPerSecond as number) / (w1Run.result.drainPerSecond as number)) * 100] : []
      })
      lines.push(
        `| ${system} | ${cell(
          runs.map((r) => r.result.enqueuePerSecond as number),
          integer,
        )} | ${cell(
          runs.map((r) => r.result.drainPerSecond as number),
          integer,
        )}${capped(runs)} | ${shares.length > 0 ? cell(shares, (n) => `${Math.round(n)}%`) : '—'} | ${cost(runs).join(' | ')} |`,
      )
    }
    lines.push('')
  }
  const latencyTable = (runsBySystem: Map<string, RunRecord[]>, title: string) => {
    if (runsBySystem.size === 0) return
    lines.push(title, '')
    lines.push(
      '| system | rate | p50 | p90 | p99 | max | commits/job | CPU-s / 1,000 jobs |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    )
    for (const [system, runs] of runsBySystem) {
      for (const rate of sizes.latencyRates) {
        const summaries = runs.map((r) => (r.result.byRate as Record<string, LatencySummary>)[String(rate)]!)
        const ms = (key: keyof LatencySummary) =>
          cell(
            summaries.map((s) => s[key]),
            decimal(2),
          )
        const unwarmed = runs.some((r) => r.result.isWarmedUp === false) ? ' (warm-up unfinished)' : ''
        lines.push(
          `| ${system}${unwarmed} | ${rate}/s | ${ms('p50')} | ${ms('p90')} | ${ms('p99')} | ${ms('max')} | ${cost(runs).join(' | ')} |`,
        )
      }
    }
    if (runsBySystem.has('transport-floor')) {
      lines.push(
        '',
        'transport-floor is not a job system: a message on a long-lived gRPC stream to a relay process that commits one INSERT, then pushes the payload on a server stream to the worker process and answers on the first stream. It has the hops of a StackShift enqueue and nothing else: the least such a path takes on this machine.',
      )
    }
    lines.push('')
  }
  latencyTable(
    bySystem(records, 'W2'),
    `**W2 latency** — enqueue to handler start (ms), open-loop arrivals for ${sizes.latencySeconds} s per rate, from freshly started processes`,
  )
  latencyTable(
    bySystem(records, 'W2W'),
    `**W2W latency after warm-up** — W2 after ${integer(sizes.warmupRuns)} unmeasured runs at ${sizes.warmupRate}/s (commits and CPU include them)`,
  )
  const stepsTable = (runsBySystem: Map<string, RunRecord[]>, title: string) => {
    if (runsBySystem.size === 0) return
    lines.push(title, '')
    lines.push('| system | step executions/s | commits/job | CPU-s / 1,000 jobs |', '| --- | ---: | ---: | ---: |')
    for (const [system, runs] of runsBySystem) {
      lines.push(
        `| ${system} | ${cell(
          runs.map((r) => r.result.stepExecutionsPerSecond as number),
          integer,
        )}${capped(runs)} | ${cost(runs).join(' | ')} |`,
      )
    }
    lines.push('')
  }
  stepsTable(
    bySystem(records, 'W3'),
    `**W3 steps** — ${integer(sizes.stepJobs)} jobs of three steps (StackShift: step.run; the others: one job per step, each enqueueing the next)`,
  )
  stepsTable(bySystem(records, 'W3P'), `**W3P steps under a policy** — W3 with a job-wide concurrency limit of 10,000 on the job`)
  const w4 = bySystem(records, 'W4')
  if (w4.size > 0) {
    lines.push(`**W4 history** — W1 on a database already holding ${integer(sizes.historyRuns)} finished runs`, '')
    lines.push(
      '| system | drain runs/s | share of W1 drain (same repetition) | commits/job | CPU-s / 1,000 jobs |',
      '| --- | ---: | ---: | ---: | ---: |',
    )
    for (const [system, runs] of w4) {
      const drain = runs.map((r) => r.result.drainPerSecond as number)
      // Each W4 run against the W1 run of its own repetition, made just before it.
      const shares = runs.flatMap((run) => {
        const w1Run = w1.get(system)?.find((r) => r.rep === run.rep)
        return w1Run ? [((run.result.drainPerSecond as number) / (w1Run.result.drainPerSecond as number)) * 100] : []
      })
      const share = shares.length > 0 ? cell(shares, (n) => `${Math.round(n)}%`) : '—'
      lines.push(`| ${system} | ${cell(drain, integer)}${capped(runs)} | ${share} | ${cost(runs).join(' | ')} |`)
    }
    lines.push('')
  }
  return lines.join('\n')
}

/** Writes results/<date>.json and results/<date>.md; returns their paths. */
export async function writeReport(directory: string, environment: BenchEnvironment, records: readonly RunRecord[]): Promise<string[]> {
  const stamp = new Date().toISOString().slice(0, 19).replaceAll(':', '-')
  const json = `${directory}/${stamp}.json`
  const markdown = `${directory}/${stamp}.md`
  await writeFile(json, JSON.stringify({ environment, records }, null, 2) + '\n')
  await writeFile(markdown, `# Benchmark ${stamp}\n\n${renderMarkdown(environment, records)}`)
  console.log('\n' + renderMarkdown(environment, records))
  return [json, markdown]
}
