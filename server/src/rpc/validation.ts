import { z } from 'zod'
import type { ServerConfig } from '../config.js'
import { InvalidArgumentError } from '../core/errors.js'
import { defaultNamespace, limits } from '../core/limits.js'
import { isUuid } from '../core/run-id.js'

/*
 * What the request parsers (run-requests.ts, worker-requests.ts,
 * state-requests.ts) share. They turn protobuf requests into validated domain
 * values; every rejection names the field as the client spelled it in the
 * .proto file (snake_case, with indexes for repeated fields), so a client in
 * any language can find it.
 */

/** The settings that bound what a request may hold. */
export type RequestLimits = Pick<ServerConfig, 'defaultMaxAttempts' | 'idempotencyTtlMs' | 'maxPayloadBytes' | 'maxBatchSize' | 'leaseMs'>

// Every schema is built once, at load: zod compiles a schema when it is
// created, and that costs far more than using it.

// eslint-disable-next-line no-control-regex
const controlCharacters = /[\u0000-\u001f\u007f]/

export function nameSchema(maxLength: number) {
  return z
    .string()
    .min(1, 'must not be empty')
    .max(maxLength, `must be at most ${maxLength} characters`)
    .refine((value) => !controlCharacters.test(value), 'must not contain control characters')
}

export const namespaceSchema = z
  .string()
  .max(limits.namespaceMaxLength, `must be at most ${limits.namespaceMaxLength} characters`)
  .regex(/^([A-Za-z0-9][A-Za-z0-9._-]*)?$/, 'must start with a letter or digit and contain only letters, digits, ".", "_" and "-"')
  .transform((value) => value || defaultNamespace)

export const uuidSchema = z.string().refine(isUuid, 'must be a UUID')

/** PostgreSQL's text (and jsonb's strings) cannot hold U+0000: every string stored or compared there is checked for it. */
export function hasNoNul(value: string): boolean {
  return !value.includes('\u0000')
}

const nulProblem = 'must not contain the NUL character (\\u0000)'

/** Free text that reaches the database: at most `maxLength` characters, no NUL (names refuse every control character). */
export function textSchema(maxLength: number) {
  return z.string().max(maxLength, `must be at most ${maxLength} characters`).refine(hasNoNul, nulProblem)
}

/**
 * Diagnostic text (an error's name, message and stack, a cancellation
 * reason) as stored: cut to `maxLength`, and NUL characters replaced by
 * U+FFFD. It is kept rather than refused: a worker reporting a failure must
 * not fail to report it because of what the error said.
 */
export function toDiagnosticText(text: string, maxLength: number): string {
  const cut = text.length <= maxLength ? text : text.slice(0, maxLength - 1) + '…'
  return hasNoNul(cut) ? cut : cut.replaceAll('\u0000', '\ufffd')
}

/**
 * An instant: google.protobuf.Timestamp's range, 0001-01-01T00:00:00Z to
 * 9999-12-31T23:59:59.999999999Z, which PostgreSQL's timestamptz holds. A
 * Timestamp beyond what a JavaScript Date holds arrives as an invalid Date.
 */
const instantMin = Date.parse('0001-01-01T00:00:00Z')
const instantMax = Date.parse('9999-12-31T23:59:59.999Z')
const instantRange = 'must be an instant from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z'

export const instantSchema = z
  .date({ error: (issue) => (issue.input === undefined ? 'is required' : instantRange) })
  .refine((date) => date.getTime() >= instantMin && date.getTime() <= instantMax, instantRange)

/** A lease duration, or 0 for "the default", which the caller fills in. */
export const leaseMsSchema = z
  .number()
  .int()
  .refine(
    (ms) => ms === 0 || (ms >= limits.leaseMinMs && ms <= limits.leaseMaxMs),
    `must be 0 or ${limits.leaseMinMs} to ${limits.leaseMaxMs}`,
  )

export const nameListSchema = (maxLength: number, maxCount: number) =>
  z
    .array(nameSchema(maxLength))
    .min(1, 'must name at least one')
    .max(maxCount, `must name at most ${maxCount}`)
    .transform((names) => [...new Set(names)])

function snakeCase(segment: string): string {
  return segment.replace(/[A-Z]/g, (letter) => '_' + letter.toLowerCase())
}

/** Validates `value`; on failure throws InvalidArgumentError naming the first offending field. */
export function parse<T>(schema: z.ZodType<T>, value: unknown, prefix: string): T {
  const result = schema.safeParse(value)
  if (result.success) return result.data
  const issue = result.error.issues[0]!
  let field = prefix
  for (const segment of issue.path)
    field += typeof segment === 'number' ? `[${segment}]` : `${field ? '.' : ''}${snakeCase(String(segment))}`
  throw new InvalidArgumentError(field || 'request', issue.message)
}

export function parseNamespace(namespace: string): string {
  return parse(namespaceSchema, namespace, 'namespace')
}
