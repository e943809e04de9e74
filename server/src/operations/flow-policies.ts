import type { Knex } from 'knex'
import {
  type JobPolicies,
  type JobPolicyRecord,
  type QueuePolicyRecord,
  claimKeyPath,
  isClaimLimited,
  normalizePolicies,
  readKeyValue,
} from '../core/flow-policy.js'
import { type FlowWait, findFlowWait } from '../core/flow-wait.js'
import type { NewRun } from '../core/run.js'
import {
  flowUsageFind,
  jobPolicyFind,
  jobPolicyList,
  jobPolicyUpsert,
  queuePolicyFind,
  queuePolicyList,
  queuePolicyUpsert,
  runAssignConcurrencyKeys,
} from '../db/queries/flow-policies.js'
import type { Logger } from '../logger.js'

/** Where flow control puts a new run: the key value it is stored with, and whether it is debounced. */
export interface FlowPlacement {
  /** The key value for concurrency, rate limit and fairness; undefined when no claim-time policy applies. */
  concurrencyKey: string | undefined
  /** Set for a debounced job: the run merges with a pending run of the same key. */
  debounce: { key: string; periodMs: number } | undefined
}

const unplaced: FlowPlacement = { concurrencyKey: undefined, debounce: undefined }

function entryKey(namespace: string, name: string): string {
  return `${namespace}\u0000${name}`
}

/**
 * The flow-control policies of every job and queue, kept in memory so that
 * the enqueue path reads them with a Map lookup (and nothing more for jobs
 * without policies), and reloaded when any server changes them (the trigger
 * on the policy tables notifies; the listener calls `reload`). The claim
 * reads the stored policies itself, so what it enforces never lags; this copy
 * decides where runs go (their key value, debounce; which claim takes them),
 * and lags a change by one notification.
 *
 * When a job gains a claim-time policy, or a queue a limit, each server
 * keys the unfinished runs stored without a key value once its copy has the
 * change (runAssignConcurrencyKeys): runs it enqueued before it knew are put
 * under flow control too.
 */
export class FlowPolicies {
  private jobs = new Map<string, JobPolicyRecord>()
  private queues = new Map<string, QueuePolicyRecord>()
  private reloading: Promise<void> | undefined
  private isReloadWanted = false

  constructor(private readonly deps: { db: Knex; logger: Logger }) {}

  /** Reads every policy. Call before serving. */
  async load(): Promise<void> {
    const [jobs, queues] = await Promise.all([jobPolicyList(this.deps.db, { namespace: undefined }), queuePolicyList(this.deps.db)])
    const previousJobs = this.jobs
    const previousQueues = this.queues
    this.jobs = new Map(jobs.map((record) => [entryKey(record.namespace, record.job), record]))
    this.queues = new Map(queues.map((record) => [entryKey(record.namespace, record.queue), record]))
    for (const record of jobs) {
      const before = previousJobs.get(entryKey(record.namespace, record.job))
      if (before?.version !== record.version) await this.keyStoredRunsOfJob(record)
    }
    for (const record of queues) {
      const before = previousQueues.get(entryKey(record.namespace, record.queue))
      if (before?.version !== record.version) await this.keyStoredRunsOfQueue(record)
    }
  }

  /** Policies changed somewhere (or notices may have been lost): read them again. Calls that overlap share a reload. */
  reload(): void {
    if (this.reloading) {
      this.isReloadWanted = true
      return
    }
    this.reloading = this.load()
      .catch((error: unknown) => this.deps.logger.warn({ err: error }, 'could not reload flow-control policies'))
      .finally(() => {
        this.reloading = undefined
        if (this.isReloadWanted) {
          this.isReloadWanted = false
          this.reload()
        }
      })
  }

  /** The job's policies, when it has any. */
  jobPolicies(namespace: string, job: string): JobPolicies | undefined {
    const policies = this.jobs.get(entryKey(namespace, job))?.policies
    return policies && Object.keys(policies).length > 0 ? policies : undefined
  }

  /** The queue's concurrency limit, when it has one. */
  queueLimit(namespace: string, queue: string): number | undefined {
    const concurrency = this.queues.get(entryKey(namespace, queue))?.policies.concurrency
    return concurrency ? concurrency : undefined
  }

  /** Whether runs of this queue and job are claimed by the flow claim (claim_flow_runs), not claim_runs. */
  isFlowControlled(namespace: string, queue: string, job: string): boolean {
    if (this.queues.size > 0 && this.queueLimit(namespace, queue) !== undefined) return true
    const policies = this.jobs.size > 0 ? this.jobPolicies(namespace, job) : undefined
    return policies !== undefined && isClaimLimited(policies)
  }

  /**
   * Where a new run goes: its key value (the one given at enqueue, else the
   * value at the policies' payload path, else '') when a claim-time policy or
   * a queue limit applies, and its debounce key when the job is debounced.
   */
  placementOf(namespace: string, run: Pick<NewRun, 'queue' | 'job' | 'payloadJson' | 'concurrencyKey'>): FlowPlacement {
    if (this.jobs.size === 0 && this.queues.size === 0) return unplaced
    const policies = this.jobPolicies(namespace, run.job)
    const hasQueueLimit = this.queueLimit(namespace, run.queue) !== undefined
    if (!policies && !hasQueueLimit) return unplaced
    let concurrencyKey: string | undefined
    if (policies && isClaimLimited(policies)) {
      const keyPath = claimKeyPath(policies)
      concurrencyKey = run.concurrencyKey ?? (keyPath === undefined ? '' : readKeyValue(run.payloadJson, keyPath))
    } else if (hasQueueLimit) concurrencyKey = ''
    const debounce = policies?.debounce
    return {
      concurrencyKey,
      debounce: debounce && {
        key: debounce.keyPath === undefined ? '' : readKeyValue(run.payloadJson, debounce.keyPath),
        periodMs: debounce.periodMs,
      },
    }
  }

  /**
   * Stores a job's policies (all of them; none removes them). Equal to the
   * stored ones, nothing changes. Returns the stored record.
   */
  async configureJob(namespace: string, job: string, policies: JobPolicies): Promise<JobPolicyRecord> {
    const { record, isChanged } = await jobPolicyUpsert(this.deps.db, { namespace, job, policies: normalizePolicies(policies) })
    if (isChanged) {
      this.deps.logger.info({ namespace, job, policies: record.policies, version: record.version }, 'job policies changed')
      this.jobs.set(entryKey(namespace, job), record)
      await this.keyStoredRunsOfJob(record)
    }
    return record
  }

  /** Stores a queue's concurrency limit (0: none). */
  async configureQueue(namespace: string, queue: string, concurrency: number): Promise<QueuePolicyRecord> {
    const { record, isChanged } = await queuePolicyUpsert(this.deps.db, { namespace, queue, concurrency })
    if (isChanged) {
      this.deps.logger.info({ namespace, queue, concurrency, version: record.version }, 'queue policies changed')
      this.queues.set(entryKey(namespace, queue), record)
      await this.keyStoredRunsOfQueue(record)
    }
    return record
  }

  /** A job's stored policies (version 0 when never configured). */
  async getJob(namespace: string, job: string): Promise<JobPolicyRecord> {
    return (await jobPolicyFind(this.deps.db, { namespace, job })) ?? { namespace, job, policies: {}, version: 0, updatedAt: undefined }
  }

  /** The jobs of a namespace that have policies. */
  async listJobs(namespace: string): Promise<JobPolicyRecord[]> {
    return (await jobPolicyList(this.deps.db, { namespace })).filter((record) => Object.keys(record.policies).length > 0)
  }

  /** A queue's stored policies (version 0 when never configured). */
  async getQueue(namespace: string, queue: string): Promise<QueuePolicyRecord> {
    return (
      (await queuePolicyFind(this.deps.db, { namespace, queue })) ?? {
        namespace,
        queue,
        policies: { concurrency: 0 },
        version: 0,
        updatedAt: undefined,
      }
    )
  }

  /**
   * Why a ready run under flow control is not starting, counted now; undefined
   * when no limit holds it (or it is not under flow control).
   */
  async flowWaitOf(run: {
    namespace: string
    queue: string
    job: string
    concurrencyKey: string | undefined
  }): Promise<FlowWait | undefined> {
    if (run.concurrencyKey === undefined) return undefined
    const policies = this.jobPolicies(run.namespace, run.job)
    const queueLimit = this.queueLimit(run.namespace, run.queue)
    if (!policies && queueLimit === undefined) return undefined
    const rateLimit = policies?.rateLimit
    const counts = await flowUsageFind(this.deps.db, {
      namespace: run.namespace,
      queue: run.queue,
      job: run.job,
      key: run.concurrencyKey,
      hasQueueLimit: queueLimit !== undefined,
      hasJobLimit: policies?.concurrency !== undefined && policies.concurrency.keyPath === undefined,
      hasKeyLimit: policies?.concurrency?.keyPath !== undefined,
      rate: rateLimit && {
        limit: rateLimit.limit,
        periodMs: rateLimit.periodMs,
        rateKey: rateLimit.keyPath === undefined ? '' : run.concurrencyKey,
      },
    })
    return findFlowWait({ queue: run.queue, key: run.concurrencyKey, policies, queueLimit, counts })
  }

  private async keyStoredRunsOfJob(record: JobPolicyRecord): Promise<void> {
    if (!isClaimLimited(record.policies)) return
    await this.keyStoredRuns({ namespace: record.namespace, job: record.job, keyPath: claimKeyPath(record.policies) })
  }

  private async keyStoredRunsOfQueue(record: QueuePolicyRecord): Promise<void> {
    if (record.policies.concurrency === 0) return
    await this.keyStoredRuns({ namespace: record.namespace, queue: record.queue })
  }

  /**
   * Keys the runs stored without a key value, now and once more a second
   * later: an enqueue that read the policies before they changed may commit
   * after the first pass, and its runs would otherwise wait for a claim that
   * never comes (claim_runs no longer takes the job, claim_flow_runs only
   * takes keyed runs).
   */
  private async keyStoredRuns(target: Parameters<typeof runAssignConcurrencyKeys>[1]): Promise<void> {
    const pass = async () => {
      const keyed = await runAssignConcurrencyKeys(this.deps.db, target)
      if (keyed > 0) this.deps.logger.info({ ...target, runs: keyed }, 'runs put under flow control')
    }
    await pass()
    setTimeout(() => {
      pass().catch((error: unknown) => this.deps.logger.warn({ err: error, ...target }, 'could not put stored runs under flow control'))
    }, 1000).unref()
  }
}
