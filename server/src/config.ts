import { z } from 'zod'

/**
 * Every server setting, parsed once from environment variables, with
 * command-line flags as overrides (`--lease-ms 10000` overrides
 * STACKSHIFT_LEASE_MS).
 *
 * Each setting is written once, in `settings`: its key is the name the code
 * uses (`config.leaseMs`), its JSDoc what it means (one sentence for users),
 * and its entry the environment variable (the flag is derived from it), the
 * default and the schema that parses it. `ServerConfig` is derived from
 * `settings`, and so is the README's Configuration table: `npm run gen:docs`
 * rewrites it, and a test fails when it is out of date.
 */

/** An integer from `min` to `max`, inclusive. */
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max)

/** A switch, `on` or `off`, read as a boolean. */
const onOff = z.enum(['on', 'off']).transform((value) => value === 'on')

/** How one setting is read. */
export interface Setting {
  /** Environment variable; the flag that overrides it is derived from it (`flagName`). */
  env: string
  /** Value when neither the variable nor the flag is given, written as a user would; omitted: unset. */
  default?: string | number
  /** Parses the value; its output is the type of the setting's `ServerConfig` field. */
  schema: z.ZodType
}

/** Every setting, keyed by the name the code uses; the JSDoc of each is its meaning in the README. */
export const settings = {
  /** PostgreSQL connection string. Unset: start an embedded PostgreSQL under `STACKSHIFT_DATA_DIR`. */
  databaseUrl: { env: 'DATABASE_URL', schema: z.string().min(1).optional() },
  /** Interface the gRPC server binds to; `0.0.0.0` for every interface (auth is then required, see `STACKSHIFT_AUTH`). */
  host: { env: 'STACKSHIFT_HOST', default: '127.0.0.1', schema: z.string().min(1) },
  /** gRPC port; `0` picks a free one. */
  port: { env: 'STACKSHIFT_PORT', default: 50_051, schema: int(0, 65_535) },
  /** Directory of the embedded PostgreSQL's data (kept across restarts). */
  dataDir: { env: 'STACKSHIFT_DATA_DIR', default: '.stackshift', schema: z.string().min(1) },
  /**
   * API keys: `required` refuses every call without a valid key; `off` accepts every call; `auto` is `off` when the
   * server listens only on loopback and `required` otherwise.
   */
  auth: { env: 'STACKSHIFT_AUTH', default: 'auto', schema: z.enum(['auto', 'required', 'off']) },
  /** A key with every scope in every namespace, for creating the first keys; at least 32 characters. Unset: none. */
  adminKey: { env: 'STACKSHIFT_ADMIN_KEY', schema: z.string().min(32).optional() },
  /** TLS: the server's certificate chain (PEM). With `STACKSHIFT_TLS_KEY_FILE`; read again every 2 s, so a renewed certificate is served without a restart. Unset: plain text. */
  tlsCertFile: { env: 'STACKSHIFT_TLS_CERT_FILE', schema: z.string().min(1).optional() },
  /** TLS: the server's private key (PEM), for `STACKSHIFT_TLS_CERT_FILE`; read again every 2 s (replace both files together). */
  tlsKeyFile: { env: 'STACKSHIFT_TLS_KEY_FILE', schema: z.string().min(1).optional() },
  /** mTLS: certificate authorities (PEM) whose client certificates are accepted; set, clients must present one. Read again every 2 s. */
  tlsClientCaFile: { env: 'STACKSHIFT_TLS_CLIENT_CA_FILE', schema: z.string().min(1).optional() },
  /** Port of the embedded PostgreSQL (on 127.0.0.1); `0` picks a free one. */
  embeddedPostgresPort: { env: 'STACKSHIFT_EMBEDDED_PG_PORT', default: 54_329, schema: int(0, 65_535) },
  /** Database connections per server process (plus one for LISTEN and one for the health probe). */
  dbPoolSize: { env: 'STACKSHIFT_DB_POOL_SIZE', default: 10, schema: int(2, 1000) },
  /**
   * Longest a database statement may run, in ms, before PostgreSQL cancels it and the call fails with `UNAVAILABLE`;
   * `0`: no limit. Migrations run without it.
   */
  dbStatementTimeoutMs: { env: 'STACKSHIFT_DB_STATEMENT_TIMEOUT_MS', default: 60_000, schema: int(0, 86_400_000) },
  /** Longest a database transaction may stay idle, in ms, before PostgreSQL ends its session; `0`: no limit. */
  dbIdleInTransactionTimeoutMs: { env: 'STACKSHIFT_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS', default: 60_000, schema: int(0, 86_400_000) },
  /** Default lease duration in ms; workers may ask for 500 ms to 1 hour. */
  leaseMs: { env: 'STACKSHIFT_LEASE_MS', default: 30_000, schema: int(500, 3_600_000) },
  /** Attempts per run unless the enqueue says otherwise. */
  defaultMaxAttempts: { env: 'STACKSHIFT_DEFAULT_MAX_ATTEMPTS', default: 5, schema: int(1, 1000) },
  /** Backoff before a run's second attempt, in ms. */
  retryBaseMs: { env: 'STACKSHIFT_RETRY_BASE_MS', default: 1000, schema: int(0, 86_400_000) },
  /** Upper bound of any backoff, in ms. */
  retryMaxMs: { env: 'STACKSHIFT_RETRY_MAX_MS', default: 3_600_000, schema: int(0, 31_536_000_000) },
  /** How long an idempotency key deduplicates, in ms (24 h). */
  idempotencyTtlMs: { env: 'STACKSHIFT_IDEMPOTENCY_TTL_MS', default: 86_400_000, schema: int(1000, 31_536_000_000) },
  /** Largest payload, step result, run result, event data or State Store value, in bytes of JSON text. */
  maxPayloadBytes: { env: 'STACKSHIFT_MAX_PAYLOAD_BYTES', default: 1024 * 1024, schema: int(1024, 64 * 1024 * 1024) },
  /** Largest gRPC message the server accepts, in bytes. */
  maxMessageBytes: { env: 'STACKSHIFT_MAX_MESSAGE_BYTES', default: 16 * 1024 * 1024, schema: int(64 * 1024, 512 * 1024 * 1024) },
  /**
   * Most calls in flight at once on one client connection (HTTP/2 streams); gRPC clients queue calls beyond it until
   * one ends (a queued call fails only if its deadline passes first).
   */
  maxConcurrentStreams: { env: 'STACKSHIFT_MAX_CONCURRENT_STREAMS', default: 10_000, schema: int(1, 1_000_000) },
  /** Most runs in one `enqueueMany` (one `EnqueueBatch` call). */
  maxBatchSize: { env: 'STACKSHIFT_MAX_BATCH_SIZE', default: 10_000, schema: int(1, 100_000) },
  /** How often idle workers and timers poll, in ms, as a backstop should a notification be missed. */
  pollIntervalMs: { env: 'STACKSHIFT_POLL_INTERVAL_MS', default: 2000, schema: int(50, 600_000) },
  /** How often expired leases are returned to the queue, in ms. */
  reaperIntervalMs: { env: 'STACKSHIFT_REAPER_INTERVAL_MS', default: 1000, schema: int(50, 600_000) },
  /** Finished runs are deleted after this long, in ms (30 days); `0` keeps them forever. */
  retentionMs: { env: 'STACKSHIFT_RETENTION_MS', default: 30 * 86_400_000, schema: int(0, 3_153_600_000_000) },
  /** How often the retention sweep runs, in ms. */
  retentionIntervalMs: { env: 'STACKSHIFT_RETENTION_INTERVAL_MS', default: 60_000, schema: int(1000, 86_400_000) },
  /** How often expired State Store entries and locks are deleted, in ms (they are invisible from the moment they expire). */
  stateSweepIntervalMs: { env: 'STACKSHIFT_STATE_SWEEP_INTERVAL_MS', default: 10_000, schema: int(50, 86_400_000) },
  /**
   * How often each server looks for schedules created or resumed on other servers, and for buffered ticks whose run
   * ended, in ms; due ticks are fired on time regardless (a server sleeps until the next tick it knows of).
   */
  schedulePollIntervalMs: { env: 'STACKSHIFT_SCHEDULE_POLL_INTERVAL_MS', default: 1000, schema: int(50, 600_000) },
  /** Most schedules one transaction of the firing pass takes; their runs are inserted in one statement. */
  scheduleBatchSize: { env: 'STACKSHIFT_SCHEDULE_BATCH_SIZE', default: 1000, schema: int(1, 10_000) },
  /** Group-commit batches of one kind in flight at once. */
  writeConcurrency: { env: 'STACKSHIFT_WRITE_CONCURRENCY', default: 2, schema: int(1, 64) },
  /** On SIGTERM, how long in-flight calls may take before connections are cut, in ms. */
  shutdownGraceMs: { env: 'STACKSHIFT_SHUTDOWN_GRACE_MS', default: 10_000, schema: int(0, 600_000) },
  /** Log level: `trace`, `debug`, `info`, `warn`, `error`, `fatal` or `silent`. Logs are JSON lines on stdout. */
  logLevel: {
    env: 'STACKSHIFT_LOG_LEVEL',
    default: 'info',
    schema: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']),
  },
  /** How often the database is probed for the gRPC health status, in ms. */
  healthProbeIntervalMs: { env: 'STACKSHIFT_HEALTH_PROBE_INTERVAL_MS', default: 5000, schema: int(50, 600_000) },
  /** `on` serves Prometheus metrics over HTTP at `/metrics`; `off` serves none. */
  isMetricsEnabled: { env: 'STACKSHIFT_METRICS', default: 'on', schema: onOff },
  /** Interface the metrics endpoint binds to. */
  metricsHost: { env: 'STACKSHIFT_METRICS_HOST', default: '127.0.0.1', schema: z.string().min(1) },
  /** Set: the metrics endpoint answers only requests with `Authorization: Bearer <token>`. */
  metricsToken: { env: 'STACKSHIFT_METRICS_TOKEN', schema: z.string().min(1).optional() },
  /** Port of the metrics endpoint; `0` picks a free one. */
  metricsPort: { env: 'STACKSHIFT_METRICS_PORT', default: 9464, schema: int(0, 65_535) },
  /**
   * `on` serves the web console, and the Connect endpoint it calls the services through, on `STACKSHIFT_HOST`: over
   * HTTP, or HTTPS with the gRPC server's certificate when TLS is on (client certificates required with mTLS); `off`
   * serves neither.
   */
  isConsoleEnabled: { env: 'STACKSHIFT_CONSOLE', default: 'on', schema: onOff },
  /** Port of the web console and its Connect endpoint; `0` picks a free one. */
  consolePort: { env: 'STACKSHIFT_CONSOLE_PORT', default: 8233, schema: int(0, 65_535) },
  /**
   * Link from a run's trace id in the console to a tracing UI: `{traceId}` is replaced by the trace id, as in
   * `http://localhost:16686/trace/{traceId}` (Jaeger). Unset: the trace id is shown without a link.
   */
  consoleTraceUrl: {
    env: 'STACKSHIFT_CONSOLE_TRACE_URL',
    schema: z
      .string()
      .regex(/^https?:\/\/\S*\{traceId\}\S*$/, 'must be an http(s) URL containing {traceId}')
      .optional(),
  },
  /**
   * Process-wide tuning, opt-in: `idle` puts V8's helper threads (compiler, garbage collector) at idle priority on
   * Linux, so they do not preempt the thread that serves requests; `normal` leaves thread priorities alone. See
   * [Tuning](#tuning).
   */
  backgroundThreads: { env: 'STACKSHIFT_BACKGROUND_THREADS', default: 'normal', schema: z.enum(['idle', 'normal']) },
} satisfies Record<string, Setting>

type SettingName = keyof typeof settings

/** The parsed configuration, in the names the code uses: one field per setting, typed by its schema. */
export type ServerConfig = { [Name in SettingName]: z.output<(typeof settings)[Name]['schema']> }

/** The flag that overrides an environment variable: STACKSHIFT_LEASE_MS -> --lease-ms, DATABASE_URL -> --database-url. */
export function flagName(env: string): string {
  return (
    '--' +
    env
      .replace(/^STACKSHIFT_/, '')
      .toLowerCase()
      .replaceAll('_', '-')
  )
}

const settingNames = Object.keys(settings) as SettingName[]
const settingByFlag = new Map(settingNames.map((name) => [flagName(settings[name].env), name]))

/** Turns `--flag value` and `--flag=value` arguments into setting overrides. */
function parseFlags(argv: readonly string[]): Partial<Record<SettingName, string>> {
  const overrides: Partial<Record<SettingName, string>> = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined]
    const name = settingByFlag.get(flag)
    if (!name) throw new ConfigError(`unknown flag ${flag}; known flags: ${[...settingByFlag.keys()].join(', ')}`)
    const value = inline ?? argv[++i]
    if (value === undefined) throw new ConfigError(`flag ${flag} needs a value`)
    overrides[name] = value
  }
  return overrides
}

/** The configuration is invalid; the message names the setting. */
export class ConfigError extends Error {
  override name = 'ConfigError'
}

/**
 * Parses the configuration from the environment and command-line flags.
 * Empty environment variables count as unset.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, argv: readonly string[] = []): ServerConfig {
  const overrides = parseFlags(argv)
  const config: Record<string, unknown> = {}
  const problems: string[] = []
  for (const name of settingNames) {
    const setting: Setting = settings[name]
    const value = overrides[name] ?? (env[setting.env] || undefined) ?? setting.default
    const parsed = setting.schema.safeParse(value)
    if (parsed.success) config[name] = parsed.data
    else problems.push(...parsed.error.issues.map((issue) => `${[setting.env, ...issue.path].join('.')}: ${issue.message}`))
  }
  if (problems.length > 0) throw new ConfigError(`invalid configuration: ${problems.join('; ')}`)
  // Each field was parsed by its setting's schema, whose output type is the field's type.
  return config as ServerConfig
}
