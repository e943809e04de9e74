/** What each system under test provides to the workloads. */

/** Settings shared by every system, so they run with the same resources. */
export interface BenchConfig {
  databaseUrl: string
  /** Jobs a worker executes at once. */
  concurrency: number
  /** Database connections of the system's own pool. */
  poolSize: number
  /** Address of the StackShift server (StackShift only). */
  stackshiftAddress?: string
}

/** What a latency run's job carries: when it was enqueued, and the phase (warm-up or a rate) that sent it. */
export interface ProbePayload {
  enqueuedAt?: number
  phase?: number
}

/** A no-op handler that records when it started. */
export type ProbeHandler = (payload: ProbePayload) => void

export interface SystemAdapter {
  /** Installs the system's schema, and notes what an earlier process (W4's history loader) left in it. */
  install(): Promise<void>
  /** Adds `count` finished jobs of `job` straight in the database, as kept history, then vacuums and analyzes. */
  preloadHistory(job: string, count: number): Promise<void>
  /** Enqueues jobs with the system's bulk API, one call per batch. */
  enqueueBulk(job: string, payloads: ReadonlyArray<Record<string, unknown>>): Promise<void>
  /** Enqueues one job with the system's single-job API. */
  enqueueOne(job: string, payload: Record<string, unknown>): Promise<void>
  /** Starts workers that run `handler` for `job`. */
  startWorker(job: string, handler: ProbeHandler): Promise<void>
  /**
   * Starts workers for the three-step workload: each of `count` jobs runs
   * three steps (StackShift: step.run; the others: a job per step, each
   * enqueueing the next). `onDone` is called when a job's last step ran.
   */
  startThreeStepWorker(onDone: () => void): Promise<void>
  /** Enqueues `count` three-step jobs (their first step) with the bulk API. */
  enqueueThreeStepJobs(count: number): Promise<void>
  /**
   * Flow-control policies for `job` (StackShift only: W1P, W3P, W5), set
   * before the runs are enqueued so they are keyed at enqueue; workers
   * started after it declare the same.
   */
  configurePolicies?(job: string, policies: Record<string, unknown>): Promise<void>
  /** Jobs of this workload not yet finished, according to the database (cheap, index-backed). */
  unfinished(): Promise<number>
  stopWorker(): Promise<void>
  close(): Promise<void>
}

/** Names the adapters use. */
export const noopJob = 'noop'
export const probeJob = 'probe'
