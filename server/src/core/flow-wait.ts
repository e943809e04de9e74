import { type JobPolicies, claimKeyPath } from './flow-policy.js'

/** Which limit a ready run waits for. */
export type FlowLimitKind = 'concurrency' | 'rateLimit' | 'queueConcurrency'

/** Why a ready run is not starting: the limit it waits for, as counted when read. */
export interface FlowWait {
  limit: FlowLimitKind
  /** The run's key value the limit applies to; '' for a job-wide or queue-wide limit. */
  key: string
  /** Runs running (concurrency) or starts within the window (rate limit). */
  used: number
  max: number
  /** For a rate limit: when its window next has room. */
  opensAt: Date | undefined
  /** The same in words: `waiting for concurrency customerId=acme: 2 of 2 running`. */
  description: string
}

/** What the database counted for the run's queue, job and key (db/queries/flow-policies.ts: flowUsageFind). */
export interface FlowCounts {
  queueRunning: number | undefined
  jobRunning: number | undefined
  keyRunning: number | undefined
  rateStarts: number | undefined
  rateOpensAt: Date | undefined
}

/**
 * The first limit, in the order the flow claim checks them (queue, job,
 * key, rate), that the counts have reached; undefined when none has: the run
 * is next in line, or its key is about to be served.
 */
export function findFlowWait(params: {
  queue: string
  key: string
  policies: JobPolicies | undefined
  queueLimit: number | undefined
  counts: FlowCounts
}): FlowWait | undefined {
  const { queue, key, policies, queueLimit, counts } = params
  const keyPath = policies ? claimKeyPath(policies) : undefined
  const keyText = keyPath === undefined ? '' : ` ${keyPath}=${key}`
  if (queueLimit !== undefined && counts.queueRunning !== undefined && counts.queueRunning >= queueLimit) {
    return {
      limit: 'queueConcurrency',
      key: '',
      used: counts.queueRunning,
      max: queueLimit,
      opensAt: undefined,
      description: `waiting for queue concurrency (${queue}): ${counts.queueRunning} of ${queueLimit} running`,
    }
  }
  const concurrency = policies?.concurrency
  const running = concurrency?.keyPath === undefined ? counts.jobRunning : counts.keyRunning
  if (concurrency && running !== undefined && running >= concurrency.limit) {
    const isKeyed = concurrency.keyPath !== undefined
    return {
      limit: 'concurrency',
      key: isKeyed ? key : '',
      used: running,
      max: concurrency.limit,
      opensAt: undefined,
      description: `waiting for concurrency${isKeyed ? ` ${concurrency.keyPath}=${key}` : ''}: ${running} of ${concurrency.limit} running`,
    }
  }
  const rateLimit = policies?.rateLimit
  if (rateLimit && counts.rateStarts !== undefined && counts.rateStarts >= rateLimit.limit) {
    const isKeyed = rateLimit.keyPath !== undefined
    const opens = counts.rateOpensAt ? `; next start at ${counts.rateOpensAt.toISOString()}` : ''
    return {
      limit: 'rateLimit',
      key: isKeyed ? key : '',
      used: counts.rateStarts,
      max: rateLimit.limit,
      opensAt: counts.rateOpensAt,
      description: `waiting for rate limit${isKeyed ? keyText : ''}: ${counts.rateStarts} of ${rateLimit.limit} starts in ${rateLimit.periodMs} ms${opens}`,
    }
  }
  return undefined
}
