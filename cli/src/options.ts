/*
 * Every option any command takes, with its type and the placeholder usage
 * shows for its value. One table serves the parser and the help text; what
 * an option means to a command is written beside the command.
 */

/** How an option is written: `--name <value>`, or a bare switch. */
export interface OptionSpec {
  readonly type: 'string' | 'boolean'
  /** What the value looks like in usage, e.g. `<id>`; switches have none. */
  readonly value?: string
  readonly short?: string
}

export const optionSpecs = {
  // Global: connection, output, help.
  address: { type: 'string', value: '<host:port>' },
  'api-key': { type: 'string', value: '<key>' },
  namespace: { type: 'string', value: '<namespace>' },
  tls: { type: 'boolean' },
  'tls-ca': { type: 'string', value: '<file>' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  // Selecting runs.
  queue: { type: 'string', value: '<queue>' },
  job: { type: 'string', value: '<job>' },
  status: { type: 'string', value: '<status>' },
  'created-after': { type: 'string', value: '<time>' },
  'created-before': { type: 'string', value: '<time>' },
  'run-id': { type: 'string', value: '<id>' },
  'idempotency-key': { type: 'string', value: '<key>' },
  'payload-match': { type: 'string', value: '<json>' },
  'source-run': { type: 'string', value: '<id>' },
  'parent-run': { type: 'string', value: '<id>' },
  // Paging.
  limit: { type: 'string', value: '<n>' },
  cursor: { type: 'string', value: '<cursor>' },
  all: { type: 'boolean' },
  // Acting on runs.
  reason: { type: 'string', value: '<text>' },
  payload: { type: 'string', value: '<json>' },
  'from-step': { type: 'string', value: '<step>' },
  'dry-run': { type: 'boolean' },
  wait: { type: 'boolean' },
  // Events.
  name: { type: 'string', value: '<name>' },
  data: { type: 'string', value: '<json>' },
  id: { type: 'string', value: '<id>' },
  // State Store.
  ttl: { type: 'string', value: '<duration>' },
  prefix: { type: 'string', value: '<prefix>' },
  // API keys.
  scopes: { type: 'string', value: '<scope,...>' },
  'expires-at': { type: 'string', value: '<time>' },
  'include-revoked': { type: 'boolean' },
  // Schedules.
  cron: { type: 'string', value: '<expression>' },
  timezone: { type: 'string', value: '<zone>' },
  overlap: { type: 'string', value: '<policy>' },
  'catchup-window': { type: 'string', value: '<duration>' },
  paused: { type: 'boolean' },
  from: { type: 'string', value: '<time>' },
  to: { type: 'string', value: '<time>' },
} as const satisfies Record<string, OptionSpec>

export type OptionName = keyof typeof optionSpecs
/** Options that take a value. */
export type StringOption = { [K in OptionName]: (typeof optionSpecs)[K]['type'] extends 'string' ? K : never }[OptionName]
/** Switches. */
export type BooleanOption = Exclude<OptionName, StringOption>

/** What each option means to a command, in the order its usage lists them. */
export type OptionDescriptions = Partial<Record<OptionName, string>>

/** Options every command takes. */
export const globalOptions = {
  address: 'server address (default: STACKSHIFT_ADDRESS, else localhost:50051)',
  'api-key': 'API key to call with (default: STACKSHIFT_API_KEY)',
  namespace: 'namespace to act in (default: STACKSHIFT_NAMESPACE, else "default")',
  tls: "connect with TLS, trusting the system's certificate authorities",
  'tls-ca': 'connect with TLS, trusting this certificate authority (PEM file)',
  json: 'print one JSON document on stdout, for scripts',
  help: 'show usage',
} as const satisfies OptionDescriptions
