import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { ClaimedRun } from '../core/run.js'
import type { Logger } from '../logger.js'

/** The labels of a metric about runs. */
export interface RunLabels {
  namespace: string
  queue: string
  job: string
}

/** What a queue's unfinished runs are doing (see runCountUnfinished). */
export type QueueState = 'ready' | 'delayed' | 'waiting' | 'running'

const queueStates: readonly QueueState[] = ['ready', 'delayed', 'waiting', 'running']

/** Unfinished runs of one queue in one state, as counted at scrape time. */
export interface QueueDepthSample {
  namespace: string
  queue: string
  state: QueueState
  count: number
}

/** This server's consumers of one queue (worker streams and ClaimTask long-polls), and their free slots. */
export interface QueueCapacitySample {
  namespace: string
  queue: string
  consumers: number
  freeSlots: number
}

/**
 * Buckets of the start latency, seconds: 1 ms to 10 minutes. The low end
 * shows a direct handoff or a claim right after a wake; the high end, a
 * backlog that workers do not keep up with.
 */
export const startLatencyBucketsSeconds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]

/** Buckets of step durations, seconds: 1 ms to 1 hour. */
export const stepDurationBucketsSeconds = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600]

let processRegistry: Registry | undefined

/**
 * The default Node.js process metrics (CPU, memory, event loop lag, GC), in a
 * registry of their own shared by every server of the process: they describe
 * the process, and collecting them installs event-loop and GC observers that
 * live as long as the process, so they are set up once, not per server.
 */
function getProcessRegistry(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry()
    collectDefaultMetrics({ register: processRegistry })
  }
  return processRegistry
}

/**
 * A server's Prometheus metrics, in a registry of its own (several servers
 * can run in one process). Counters and histograms are recorded by the code
 * that commits the change, once per batch where it works in batches, after
 * the commit, from rows the statements return anyway: recording costs no
 * query. Queue depth and worker capacity are gauges read at scrape time.
 */
export class ServerMetrics {
  readonly registry = new Registry()
  private readonly enqueued: Counter<keyof RunLabels>
  private readonly completed: Counter<keyof RunLabels>
  private readonly failed: Counter<keyof RunLabels>
  private readonly cancelled: Counter<keyof RunLabels>
  private readonly leasesExpired: Counter<keyof RunLabels>
  private readonly startLatency: Histogram<keyof RunLabels>
  private readonly stepDuration: Histogram<'namespace' | 'job' | 'outcome'>
  private depthRead: Promise<QueueDepthSample[]> | undefined

  constructor(
    private readonly deps: {
      logger: Logger
      /** Counts unfinished runs by queue and state (one query); called once per scrape. */
      readQueueDepths: () => Promise<QueueDepthSample[]>
      /** This server's consumers and free slots by queue, from the dispatcher's memory. */
      readQueueCapacity: () => QueueCapacitySample[]
    },
  ) {
    const registers = [this.registry]
    const runLabels: Array<keyof RunLabels> = ['namespace', 'queue', 'job']
    this.enqueued = new Counter({
      name: 'stackshift_runs_enqueued_total',
      help: 'Runs stored by Enqueue and EnqueueBatch (deduplicated enqueues are not counted).',
      labelNames: runLabels,
      registers,
    })
    this.completed = new Counter({
      name: 'stackshift_runs_completed_total',
      help: 'Runs that ended COMPLETED.',
      labelNames: runLabels,
      registers,
    })
    this.failed = new Counter({
      name: 'stackshift_runs_failed_total',
      help: 'Runs that ended FAILED: a non-retriable error, or attempts used up (by handler errors or expired leases).',
      labelNames: runLabels,
      registers,
    })
    this.cancelled = new Counter({
      name: 'stackshift_runs_cancelled_total',
      help: 'Runs that ended CANCELLED.',
      labelNames: runLabels,
      registers,
    })
    this.leasesExpired = new Counter({
      name: 'stackshift_leases_expired_total',
      help: 'Attempts whose lease ran out without a heartbeat (the worker crashed or hung); each counts as a failed attempt.',
      labelNames: runLabels,
      registers,
    })
    this.startLatency = new Histogram({
      name: 'stackshift_run_start_latency_seconds',
      help:
        'Time from a run becoming ready (enqueued, or its delay, backoff or sleep over: Task.available_at) to an attempt being ' +
        'leased to a worker, on the database clock. A run handed back by a stopping worker keeps its original ready time.',
      labelNames: runLabels,
      buckets: startLatencyBucketsSeconds,
      registers,
    })
    this.stepDuration = new Histogram({
      name: 'stackshift_step_duration_seconds',
      help: 'Duration of steps as reported by workers: completed ones (CompleteStep) and the step that failed an attempt (FailRun).',
      labelNames: ['namespace', 'job', 'outcome'],
      buckets: stepDurationBucketsSeconds,
      registers,
    })
    const readDepths = () => this.readQueueDepths()
    const readCapacity = () => deps.readQueueCapacity()
    new Gauge({
      name: 'stackshift_queue_depth',
      help:
        'Unfinished runs per queue by state: ready (claimable now), delayed (a delay or retry backoff not yet over), waiting ' +
        '(sleeping or waiting for an event), running (leased). Counted in the database at scrape time, so every server ' +
        'reports the same values: aggregate across servers with max, not sum.',
      labelNames: ['namespace', 'queue', 'state'],
      registers,
      async collect() {
        this.reset()
        let depths: QueueDepthSample[]
        try {
          depths = await readDepths()
        } catch (error) {
          deps.logger.warn({ err: error }, 'could not count queued runs for metrics')
          return
        }
        // Every state of every queue that has unfinished runs or a consumer here, zeros included.
        const counts = new Map<string, { namespace: string; queue: string; byState: Map<QueueState, number> }>()
        const queueOf = (namespace: string, queue: string) => {
          const key = labelKey(namespace, queue)
          let entry = counts.get(key)
          if (!entry) counts.set(key, (entry = { namespace, queue, byState: new Map() }))
          return entry
        }
        for (const { namespace, queue } of readCapacity()) queueOf(namespace, queue)
        for (const depth of depths) queueOf(depth.namespace, depth.queue).byState.set(depth.state, depth.count)
        for (const { namespace, queue, byState } of counts.values()) {
          for (const state of queueStates) this.set({ namespace, queue, state }, byState.get(state) ?? 0)
        }
      },
    })
    new Gauge({
      name: 'stackshift_workers_connected',
      help:
        'Consumers connected to this server, by queue: worker streams and waiting ClaimTask long-polls. A worker of several ' +
        'queues counts in each.',
      labelNames: ['namespace', 'queue'],
      registers,
      collect() {
        this.reset()
        for (const { namespace, queue, consumers } of readCapacity()) this.set({ namespace, queue }, consumers)
      },
    })
    new Gauge({
      name: 'stackshift_worker_free_slots',
      help:
        'Runs the consumers connected to this server could take now, by queue. A worker of several queues counts its free ' +
        'slots in each.',
      labelNames: ['namespace', 'queue'],
      registers,
      collect() {
        this.reset()
        for (const { namespace, queue, freeSlots } of readCapacity()) this.set({ namespace, queue }, freeSlots)
      },
    })
  }

  /** The content type of `expose()`'s text. */
  get contentType(): string {
    return this.registry.contentType
  }

  /** Every metric in the Prometheus text format: this server's, then the process's. */
  async expose(): Promise<string> {
    const [own, process] = await Promise.all([this.registry.metrics(), getProcessRegistry().metrics()])
    return `${own}\n${process}`
  }

  /** Runs were stored (not deduplicated) in a namespace. */
  recordEnqueued(namespace: string, runs: ReadonlyArray<{ queue: string; job: string }>): void {
    for (const { labels, count } of countByLabels(runs.map((run) => ({ namespace, queue: run.queue, job: run.job })))) {
      this.enqueued.inc(labels, count)
    }
  }

  /**
   * Attempts were leased to consumers (claimed, or inserted leased by a direct
   * handoff) with a lease of `leaseMs`. The lease began at the deadline minus
   * `leaseMs`, both on the database clock, like `availableAt`.
   */
  recordStarted(runs: readonly ClaimedRun[], leaseMs: number): void {
    const children = new Map<string, Histogram.Internal<keyof RunLabels>>()
    for (const run of runs) {
      const key = labelKey(run.namespace, run.queue, run.job)
      let child = children.get(key)
      if (!child) children.set(key, (child = this.startLatency.labels({ namespace: run.namespace, queue: run.queue, job: run.job })))
      const startedAtMs = run.leaseExpiresAt.getTime() - leaseMs
      child.observe(Math.max(0, startedAtMs - run.availableAt.getTime()) / 1000)
    }
  }

  /** Runs completed, counted per queue and job by the statement that completed them. */
  recordCompleted(counts: ReadonlyArray<RunLabels & { count: number }>): void {
    for (const { namespace, queue, job, count } of counts) this.completed.inc({ namespace, queue, job }, count)
  }

  /** Runs ended FAILED. */
  recordFailed(runs: readonly RunLabels[]): void {
    for (const { labels, count } of countByLabels(runs)) this.failed.inc(labels, count)
  }

  /** A run ended CANCELLED. */
  recordCancelled(run: RunLabels): void {
    this.cancelled.inc({ namespace: run.namespace, queue: run.queue, job: run.job })
  }

  /** The reaper ended attempts whose lease had run out. */
  recordLeasesExpired(runs: readonly RunLabels[]): void {
    for (const { labels, count } of countByLabels(runs)) this.leasesExpired.inc(labels, count)
  }

  /** Workers reported step durations, in ms. */
  recordStepDurations(outcome: 'completed' | 'failed', steps: ReadonlyArray<{ namespace: string; job: string; durationMs: number }>): void {
    for (const step of steps) this.stepDuration.observe({ namespace: step.namespace, job: step.job, outcome }, step.durationMs / 1000)
  }

  /** One depth query at a time: concurrent scrapes share it. */
  private readQueueDepths(): Promise<QueueDepthSample[]> {
    this.depthRead ??= this.deps.readQueueDepths().finally(() => (this.depthRead = undefined))
    return this.depthRead
  }
}

function labelKey(...values: string[]): string {
  return values.join('\u0000')
}

/** Runs grouped by their labels, so a counter is incremented once per label set of a batch. */
function countByLabels(runs: readonly RunLabels[]): Array<{ labels: RunLabels; count: number }> {
  const groups = new Map<string, { labels: RunLabels; count: number }>()
  for (const { namespace, queue, job } of runs) {
    const key = labelKey(namespace, queue, job)
    const group = groups.get(key)
    if (group) group.count++
    else groups.set(key, { labels: { namespace, queue, job }, count: 1 })
  }
  return [...groups.values()]
}
