import {
  FlowLimit,
  type FlowWait as FlowWaitMessage,
  type JobInfo as JobInfoMessage,
  type JobPolicies as JobPoliciesMessage,
  type JobServiceClient,
  type QueueInfo as QueueInfoMessage,
} from '@stackshift/proto/job-service'
import { type Duration, parseDurationMs } from './duration.js'
import { InvalidArgumentError } from './errors.js'
import { callUnary, withRetries } from './grpc.js'

/**
 * A job's flow-control policies, enforced by the server where runs are
 * claimed, so every worker and enqueuer sees the same limits. A `key` is a
 * path into the payload (`'customerId'`, `'account.id'`): the policy holds
 * per value of it. Concurrency, rate limit and fairness that name a key must
 * name the same one.
 */
export interface JobPolicies {
  /** At most `limit` runs running at once (per key value with `key`). Sleeping and waiting runs hold no slot. */
  concurrency?: { limit: number; key?: string }
  /** At most `limit` starts in any window of `period` ("1s", or milliseconds); the excess waits. */
  rateLimit?: { limit: number; period: Duration; key?: string }
  /** An enqueue while a run of the same key value is pending replaces its payload and delays it by `period`. */
  debounce?: { period: Duration; key?: string }
  /** Ready runs are taken round robin across the values of `key`. */
  fairness?: { key: string }
}

/** A job's stored policies. */
export interface JobInfo {
  job: string
  policies: JobPolicies
  /** Bumped by every change; 0 for a job never configured. */
  version: number
  updatedAt: Date | undefined
}

/** A queue's policies: at most `concurrency` runs of the queue running at once, across every worker (0: no limit). */
export interface QueuePolicies {
  concurrency: number
}

/** A queue's stored policies. */
export interface QueueInfo {
  queue: string
  policies: QueuePolicies
  /** Bumped by every change; 0 for a queue never configured. */
  version: number
  updatedAt: Date | undefined
}

/** Why a ready run is not starting: the flow-control limit it waits for, as counted when the run was read. */
export interface FlowWait {
  limit: 'concurrency' | 'rateLimit' | 'queueConcurrency'
  /** The run's key value the limit applies to; '' for a job-wide or queue-wide limit. */
  key: string
  /** Runs running (concurrency), or starts within the window (rate limit). */
  used: number
  max: number
  /** For a rate limit: when its window next has room. */
  opensAt: Date | undefined
  /** In words: `waiting for concurrency customerId=acme: 2 of 2 running`. */
  description: string
}

/** A limit as the protocol carries it (uint32); the server checks its range. */
function toLimit(limit: number, field: string): number {
  if (!Number.isInteger(limit) || limit < 0 || limit > 0xffffffff)
    throw new InvalidArgumentError(`${field} must be a positive integer, got ${limit}`)
  return limit
}

/**
 * Policies as the protocol carries them; durations become milliseconds. What
 * the protocol cannot carry (a bad duration, a negative limit) throws
 * InvalidArgumentError naming it; the server checks the rest.
 */
export function toJobPoliciesMessage(policies: JobPolicies, field: string): JobPoliciesMessage {
  return {
    concurrency: policies.concurrency && {
      limit: toLimit(policies.concurrency.limit, `${field}.concurrency.limit`),
      key: policies.concurrency.key ?? '',
    },
    rateLimit: policies.rateLimit && {
      limit: toLimit(policies.rateLimit.limit, `${field}.rateLimit.limit`),
      periodMs: parseDurationMs(policies.rateLimit.period, `${field}.rateLimit.period`),
      key: policies.rateLimit.key ?? '',
    },
    debounce: policies.debounce && {
      periodMs: parseDurationMs(policies.debounce.period, `${field}.debounce.period`),
      key: policies.debounce.key ?? '',
    },
    fairness: policies.fairness && { key: policies.fairness.key },
  }
}

function fromJobPoliciesMessage(message: JobPoliciesMessage | undefined): JobPolicies {
  const policies: JobPolicies = {}
  if (message?.concurrency)
    policies.concurrency = { limit: message.concurrency.limit, ...(message.concurrency.key && { key: message.concurrency.key }) }
  if (message?.rateLimit)
    policies.rateLimit = {
      limit: message.rateLimit.limit,
      period: message.rateLimit.periodMs,
      ...(message.rateLimit.key && { key: message.rateLimit.key }),
    }
  if (message?.debounce)
    policies.debounce = { period: message.debounce.periodMs, ...(message.debounce.key && { key: message.debounce.key }) }
  if (message?.fairness) policies.fairness = { key: message.fairness.key }
  return policies
}

function fromJobInfo(message: JobInfoMessage | undefined): JobInfo {
  return {
    job: message?.job ?? '',
    policies: fromJobPoliciesMessage(message?.policies),
    version: message?.version ?? 0,
    updatedAt: message?.updatedAt,
  }
}

function fromQueueInfo(message: QueueInfoMessage | undefined): QueueInfo {
  return {
    queue: message?.queue ?? '',
    policies: { concurrency: message?.policies?.concurrency ?? 0 },
    version: message?.version ?? 0,
    updatedAt: message?.updatedAt,
  }
}

const flowLimits: Record<number, FlowWait['limit']> = {
  [FlowLimit.FLOW_LIMIT_CONCURRENCY]: 'concurrency',
  [FlowLimit.FLOW_LIMIT_RATE_LIMIT]: 'rateLimit',
  [FlowLimit.FLOW_LIMIT_QUEUE_CONCURRENCY]: 'queueConcurrency',
}

/** A run's flow wait, when the server sent one it knows. */
export function fromFlowWaitMessage(message: FlowWaitMessage | undefined): FlowWait | undefined {
  const limit = message && flowLimits[message.limit]
  if (!message || !limit) return undefined
  return { limit, key: message.key, used: message.used, max: message.max, opensAt: message.opensAt, description: message.description }
}

/** @internal JobService calls of a client. */
export class JobCalls {
  constructor(
    private readonly client: JobServiceClient,
    private readonly namespace: string,
    private readonly callTimeoutMs: number,
    private readonly retryBudgetMs: number,
  ) {}

  async configureJob(job: string, policies: JobPolicies): Promise<JobInfo> {
    const request = { namespace: this.namespace, job, policies: toJobPoliciesMessage(policies, 'policies') }
    // Setting the same policies twice changes nothing: safe to repeat.
    const call = () => callUnary(this.client.configureJob.bind(this.client), request, this.callTimeoutMs)
    return fromJobInfo((await withRetries(call, this.retryBudgetMs)).job)
  }

  async getJob(job: string): Promise<JobInfo> {
    const call = () => callUnary(this.client.getJob.bind(this.client), { namespace: this.namespace, job }, this.callTimeoutMs)
    return fromJobInfo((await withRetries(call, this.retryBudgetMs)).job)
  }

  async listJobs(): Promise<JobInfo[]> {
    const call = () => callUnary(this.client.listJobs.bind(this.client), { namespace: this.namespace }, this.callTimeoutMs)
    return (await withRetries(call, this.retryBudgetMs)).jobs.map(fromJobInfo)
  }

  async configureQueue(queue: string, policies: QueuePolicies): Promise<QueueInfo> {
    const request = { namespace: this.namespace, queue, policies: { concurrency: policies.concurrency } }
    const call = () => callUnary(this.client.configureQueue.bind(this.client), request, this.callTimeoutMs)
    return fromQueueInfo((await withRetries(call, this.retryBudgetMs)).queue)
  }

  async getQueue(queue: string): Promise<QueueInfo> {
    const call = () => callUnary(this.client.getQueue.bind(this.client), { namespace: this.namespace, queue }, this.callTimeoutMs)
    return fromQueueInfo((await withRetries(call, this.retryBudgetMs)).queue)
  }
}
