import { z } from 'zod'
import type {
  ConfigureJobRequest,
  ConfigureQueueRequest,
  GetJobRequest,
  GetQueueRequest,
  JobInfo,
  JobPolicies as JobPoliciesMessage,
  JobPolicyDeclaration,
  QueueInfo,
} from '@stackshift/proto/job-service'
import { InvalidArgumentError } from '../core/errors.js'
import { type JobPolicies, type JobPolicyRecord, type QueuePolicyRecord, keyPathPattern } from '../core/flow-policy.js'
import { limits } from '../core/limits.js'
import { nameSchema, namespaceSchema, parse } from './validation.js'

/** JobService requests, and the policies a worker's hello declares, as validated domain values. */

const flowLimitMax = 100_000
const periodMaxMs = 86_400_000
const keyPathMaxLength = 200

const limitSchema = z.number().int().min(1, 'must be at least 1').max(flowLimitMax, `must be at most ${flowLimitMax}`)
const periodMsSchema = z.number().int().min(1, 'must be at least 1').max(periodMaxMs, `must be at most ${periodMaxMs} (a day)`)
/** A payload path, or '' for none. */
const keyPathSchema = z
  .string()
  .max(keyPathMaxLength, `must be at most ${keyPathMaxLength} characters`)
  .refine((path) => path === '' || keyPathPattern.test(path), 'must be a payload path like "customerId" or "account.id"')

const policiesSchema = z
  .object({
    concurrency: z.object({ limit: limitSchema, key: keyPathSchema }).optional(),
    rateLimit: z.object({ limit: limitSchema, periodMs: periodMsSchema, key: keyPathSchema }).optional(),
    debounce: z.object({ periodMs: periodMsSchema, key: keyPathSchema }).optional(),
    fairness: z.object({ key: keyPathSchema.refine((path) => path !== '', 'is required') }).optional(),
  })
  .superRefine((policies, context) => {
    // A run has one key value: the policies that name a key must name the same one.
    const named = (['concurrency', 'rateLimit', 'fairness'] as const).filter((name) => policies[name]?.key)
    const first = named[0]
    for (const name of named.slice(1)) {
      if (policies[name]!.key !== policies[first!]!.key) {
        context.addIssue({
          code: 'custom',
          path: [name, 'key'],
          message: `must be the same path as ${first === 'rateLimit' ? 'rate_limit' : first}.key ("${policies[first!]!.key}") or empty`,
        })
      }
    }
  })

function toJobPolicies(parsed: z.infer<typeof policiesSchema>): JobPolicies {
  const policies: JobPolicies = {}
  if (parsed.concurrency) policies.concurrency = { limit: parsed.concurrency.limit, keyPath: parsed.concurrency.key || undefined }
  if (parsed.rateLimit)
    policies.rateLimit = { limit: parsed.rateLimit.limit, periodMs: parsed.rateLimit.periodMs, keyPath: parsed.rateLimit.key || undefined }
  if (parsed.debounce) policies.debounce = { periodMs: parsed.debounce.periodMs, keyPath: parsed.debounce.key || undefined }
  if (parsed.fairness) policies.fairness = { keyPath: parsed.fairness.key }
  return policies
}

/** Validated policies; rejections name the field under `prefix` (`policies.concurrency.limit`). */
export function parseJobPolicies(message: JobPoliciesMessage | undefined, prefix: string): JobPolicies {
  return message ? toJobPolicies(parse(policiesSchema, message, prefix)) : {}
}

/** The policies a hello declares, by job: each for a job the worker names, at most one each. */
export function parseJobPolicyDeclarations(
  declarations: readonly JobPolicyDeclaration[],
  jobs: readonly string[],
): Map<string, JobPolicies> {
  const byJob = new Map<string, JobPolicies>()
  declarations.forEach((declaration, index) => {
    const field = `hello.job_policies[${index}]`
    const job = parse(nameSchema(limits.jobMaxLength), declaration.job, `${field}.job`)
    if (!jobs.includes(job)) throw new InvalidArgumentError(`${field}.job`, `names ${job}, which is not among hello.jobs`)
    if (byJob.has(job)) throw new InvalidArgumentError(`${field}.job`, `declares ${job} a second time`)
    byJob.set(job, parseJobPolicies(declaration.policies, `${field}.policies`))
  })
  return byJob
}

const jobRequestSchema = z.object({ namespace: namespaceSchema, job: nameSchema(limits.jobMaxLength) })
const queueRequestSchema = z.object({ namespace: namespaceSchema, queue: nameSchema(limits.queueMaxLength) })
const queuePoliciesSchema = z.object({
  concurrency: z.number().int().min(0, 'must not be negative').max(flowLimitMax, `must be at most ${flowLimitMax}`),
})

export function parseConfigureJob(request: ConfigureJobRequest): { namespace: string; job: string; policies: JobPolicies } {
  return { ...parse(jobRequestSchema, request, ''), policies: parseJobPolicies(request.policies, 'policies') }
}

export function parseGetJob(request: GetJobRequest): { namespace: string; job: string } {
  return parse(jobRequestSchema, request, '')
}

export function parseConfigureQueue(request: ConfigureQueueRequest): { namespace: string; queue: string; concurrency: number } {
  const { namespace, queue } = parse(queueRequestSchema, request, '')
  return { namespace, queue, concurrency: request.policies ? parse(queuePoliciesSchema, request.policies, 'policies').concurrency : 0 }
}

export function parseGetQueue(request: GetQueueRequest): { namespace: string; queue: string } {
  return parse(queueRequestSchema, request, '')
}

/** Stored policies as the protocol's JobPolicies. */
export function toJobPoliciesMessage(policies: JobPolicies): JobPoliciesMessage {
  return {
    concurrency: policies.concurrency && { limit: policies.concurrency.limit, key: policies.concurrency.keyPath ?? '' },
    rateLimit: policies.rateLimit && {
      limit: policies.rateLimit.limit,
      periodMs: policies.rateLimit.periodMs,
      key: policies.rateLimit.keyPath ?? '',
    },
    debounce: policies.debounce && { periodMs: policies.debounce.periodMs, key: policies.debounce.keyPath ?? '' },
    fairness: policies.fairness && { key: policies.fairness.keyPath },
  }
}

export function toJobInfo(record: JobPolicyRecord): JobInfo {
  return { job: record.job, policies: toJobPoliciesMessage(record.policies), version: record.version, updatedAt: record.updatedAt }
}

export function toQueueInfo(record: QueuePolicyRecord): QueueInfo {
  return {
    queue: record.queue,
    policies: { concurrency: record.policies.concurrency },
    version: record.version,
    updatedAt: record.updatedAt,
  }
}
