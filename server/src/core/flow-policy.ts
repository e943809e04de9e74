/**
 * Flow control: the policies a job or a queue has, and how a run's key value
 * is read from its payload. Pure logic; the claim that enforces the policies
 * is db/functions/claim-flow-runs.ts.
 */

/** At most `limit` runs of the job running at once (per key value when `keyPath` is set). */
export interface ConcurrencyPolicy {
  limit: number
  keyPath: string | undefined
}

/** At most `limit` starts in any window of `periodMs` (per key value when `keyPath` is set). */
export interface RateLimitPolicy {
  limit: number
  periodMs: number
  keyPath: string | undefined
}

/** Enqueues within `periodMs` of a pending run with the same key value update that run. */
export interface DebouncePolicy {
  periodMs: number
  keyPath: string | undefined
}

/** Ready runs are taken round robin across the values of `keyPath`. */
export interface FairnessPolicy {
  keyPath: string
}

/** A job's policies; every one optional. */
export interface JobPolicies {
  concurrency?: ConcurrencyPolicy
  rateLimit?: RateLimitPolicy
  debounce?: DebouncePolicy
  fairness?: FairnessPolicy
}

/** A job's stored policies. */
export interface JobPolicyRecord {
  namespace: string
  job: string
  policies: JobPolicies
  /** Bumped by every change; 0 for a job never configured. */
  version: number
  updatedAt: Date | undefined
}

/** A queue's policies: `concurrency` 0 means no limit. */
export interface QueuePolicies {
  concurrency: number
}

/** A queue's stored policies. */
export interface QueuePolicyRecord {
  namespace: string
  queue: string
  policies: QueuePolicies
  version: number
  updatedAt: Date | undefined
}

/** Longest key value stored with a run; longer values are cut to it. */
export const concurrencyKeyMaxLength = 500

/** A payload path: dot-separated segments of letters, digits, `_` and `-`. */
export const keyPathPattern = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/

/**
 * The one payload path a job's concurrency, rate limit and fairness share
 * (request parsing makes sure the ones that are set agree), or undefined when
 * none names one: then every run of the job has the key value ''.
 */
export function claimKeyPath(policies: JobPolicies): string | undefined {
  return policies.concurrency?.keyPath ?? policies.rateLimit?.keyPath ?? policies.fairness?.keyPath
}

/**
 * Whether runs of a job with these policies are claimed by the flow claim
 * (claim_flow_runs) and carry a key value: any policy enforced at claim time.
 */
export function isClaimLimited(policies: JobPolicies): boolean {
  return policies.concurrency !== undefined || policies.rateLimit !== undefined || policies.fairness !== undefined
}

/**
 * The key value at `keyPath` in a payload (JSON text): a string as it is, a
 * number or boolean as its JSON text; anything else, or nothing there, is the
 * shared key ''. Cut to `concurrencyKeyMaxLength` characters. The SQL that
 * keys runs already queued when a policy appears
 * (db/queries/flow-policies.ts: runAssignConcurrencyKeys) reads the same way.
 */
export function readKeyValue(payloadJson: string, keyPath: string): string {
  let value: unknown
  try {
    value = payloadJson === '' ? null : JSON.parse(payloadJson)
  } catch {
    return ''
  }
  for (const segment of keyPath.split('.')) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return ''
    value = (value as Record<string, unknown>)[segment]
  }
  const text = typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : ''
  return text.slice(0, concurrencyKeyMaxLength)
}

/** Whether two policy sets say the same (a declaration equal to the stored one changes nothing). */
export function arePoliciesEqual(a: JobPolicies, b: JobPolicies): boolean {
  return JSON.stringify(normalizePolicies(a)) === JSON.stringify(normalizePolicies(b))
}

/** The policies with their fields in one order and nothing undefined: what is stored as jsonb. */
export function normalizePolicies(policies: JobPolicies): JobPolicies {
  const out: JobPolicies = {}
  if (policies.concurrency) out.concurrency = { limit: policies.concurrency.limit, keyPath: policies.concurrency.keyPath }
  if (policies.rateLimit)
    out.rateLimit = { limit: policies.rateLimit.limit, periodMs: policies.rateLimit.periodMs, keyPath: policies.rateLimit.keyPath }
  if (policies.debounce) out.debounce = { periodMs: policies.debounce.periodMs, keyPath: policies.debounce.keyPath }
  if (policies.fairness) out.fairness = { keyPath: policies.fairness.keyPath }
  return JSON.parse(JSON.stringify(out)) as JobPolicies
}
