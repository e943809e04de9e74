/** The workloads of issue "benchmark against graphile-worker and pg-boss", and their sizes. */

export type WorkloadName = 'W1' | 'W1S' | 'W1P' | 'W2' | 'W2W' | 'W3' | 'W3P' | 'W4' | 'W5'

export const workloadDescriptions: Record<WorkloadName, string> = {
  W1: 'drain: no-op runs enqueued in bulk, then drained',
  W1S: 'W1 with planner statistics refreshed (ANALYZE) between enqueue and drain, as autovacuum would do in a steady state',
  W2: 'latency: enqueue to handler start at open-loop arrival rates',
  W2W: 'W2 after an unmeasured warm-up, so every process runs optimized code, as a long-running service does',
  W3: 'steps: jobs of three steps each',
  W4: 'history: W1 on a database already holding finished runs',
  W1P: 'W1 with a flow-control policy on the job (a concurrency limit above the worker’s): the flow claim’s cost over the plain claim',
  W3P: 'W3 with the same policy on the three-step job',
  W5: 'flow control: runs over many keys with per-key concurrency and fairness, bulk-enqueued, then drained',
}

/** Workloads only StackShift runs (flow control has no counterpart in the peers' adapters). */
export const stackShiftOnlyWorkloads: ReadonlySet<WorkloadName> = new Set(['W1P', 'W3P', 'W5'])

/** W1P's and W3P's policy: a job-wide limit the worker never reaches, so only the flow claim's cost shows. */
export const generousPolicy = { concurrency: { limit: 10_000 } }

/** W5's policy: at most 2 running per customer, customers served round robin. */
export const perKeyPolicy = { concurrency: { limit: 2, key: 'customerId' }, fairness: { key: 'customerId' } }

export type WorkloadSizes = ReturnType<typeof workloadSizes>

/** Sizes, from the issue; environment variables shrink them for quick checks. */
export function workloadSizes() {
  const number = (name: string, fallback: number) => Number(process.env[name] ?? fallback)
  return {
    drainRuns: number('BENCH_DRAIN_RUNS', 100_000),
    bulkBatchSize: 10_000,
    latencyRates: (process.env.BENCH_LATENCY_RATES ?? '10,100').split(',').map(Number),
    latencySeconds: number('BENCH_LATENCY_SECONDS', 30),
    /** W2W: runs enqueued at `warmupRate` per second before W2's rates are measured. */
    warmupRuns: number('BENCH_WARMUP_RUNS', 6_000),
    warmupRate: 100,
    stepJobs: number('BENCH_STEP_JOBS', 10_000),
    historyRuns: number('BENCH_HISTORY_RUNS', 1_000_000),
    /** W5: runs and the keys they are spread over. */
    flowRuns: number('BENCH_FLOW_RUNS', 100_000),
    flowKeys: number('BENCH_FLOW_KEYS', 1_000),
    /** A drain that has not finished by then is reported at the rate it reached. */
    drainCapSeconds: number('BENCH_DRAIN_CAP_SECONDS', 120),
  }
}
