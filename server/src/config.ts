import { z } from 'zod'

/**
 * Every server setting, parsed once from environment variables, with
 * command-line flags as overrides (`--lease-ms 10000` overrides
 * STACKSHIFT_LEASE_MS). The README's configuration table mirrors this list.
 */

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max)

const settings = {
  DATABASE_URL: z.string().min(1).optional(),
  STACKSHIFT_HOST: z.string().min(1).default('0.0.0.0'),
  STACKSHIFT_PORT: int(0, 65_535).default(50_051),
  STACKSHIFT_DATA_DIR: z.string().min(1).default('.stackshift'),
  STACKSHIFT_EMBEDDED_PG_PORT: int(0, 65_535).default(54_329),
  STACKSHIFT_DB_POOL_SIZE: int(2, 1000).default(10),
  STACKSHIFT_LEASE_MS: int(500, 3_600_000).default(30_000),
  STACKSHIFT_DEFAULT_MAX_ATTEMPTS: int(1, 1000).default(5),
  STACKSHIFT_RETRY_BASE_MS: int(0, 86_400_000).default(1000),
  STACKSHIFT_RETRY_MAX_MS: int(0, 31_536_000_000).default(3_600_000),
  STACKSHIFT_IDEMPOTENCY_TTL_MS: int(1000, 31_536_000_000).default(86_400_000),
  STACKSHIFT_MAX_PAYLOAD_BYTES: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
  STACKSHIFT_MAX_MESSAGE_BYTES: int(64 * 1024, 512 * 1024 * 1024).default(16 * 1024 * 1024),
  STACKSHIFT_MAX_BATCH_SIZE: int(1, 100_000).default(10_000),
  STACKSHIFT_POLL_INTERVAL_MS: int(50, 600_000).default(2000),
  STACKSHIFT_REAPER_INTERVAL_MS: int(50, 600_000).default(1000),
  STACKSHIFT_RETENTION_MS: int(0, 3_153_600_000_000).default(30 * 86_400_000),
  STACKSHIFT_RETENTION_INTERVAL_MS: int(1000, 86_400_000).default(60_000),
  STACKSHIFT_STATE_SWEEP_INTERVAL_MS: int(50, 86_400_000).default(10_000),
  STACKSHIFT_WRITE_CONCURRENCY: int(1, 64).default(2),
  STACKSHIFT_SHUTDOWN_GRACE_MS: int(0, 600_000).default(10_000),
  STACKSHIFT_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  STACKSHIFT_HEALTH_PROBE_INTERVAL_MS: int(50, 600_000).default(5000),
  STACKSHIFT_METRICS: z.enum(['on', 'off']).default('on'),
  STACKSHIFT_METRICS_HOST: z.string().min(1).default('0.0.0.0'),
  STACKSHIFT_METRICS_PORT: int(0, 65_535).default(9464),
  STACKSHIFT_BACKGROUND_THREADS: z.enum(['idle', 'normal']).default('idle'),
}

type SettingName = keyof typeof settings

const envSchema = z.object(settings)

/** The parsed configuration, in the names the code uses. */
export interface ServerConfig {
  /** PostgreSQL connection string. Unset: start an embedded PostgreSQL under `dataDir`. */
  databaseUrl: string | undefined
  /** Interface the gRPC server binds to. */
  host: string
  /** gRPC port; 0 picks a free one. */
  port: number
  /** Directory for the embedded PostgreSQL's data (kept across restarts). */
  dataDir: string
  /** Port of the embedded PostgreSQL; 0 picks a free one. */
  embeddedPostgresPort: number
  /** Database connections per server process. */
  dbPoolSize: number
  /** Default lease duration, ms; workers may ask for another. */
  leaseMs: number
  /** Attempts per run unless the enqueue says otherwise. */
  defaultMaxAttempts: number
  /** Retry backoff: delay before the second attempt, ms. */
  retryBaseMs: number
  /** Retry backoff: upper bound, ms. */
  retryMaxMs: number
  /** How long an idempotency key deduplicates, ms. */
  idempotencyTtlMs: number
  /** Largest payload, step result or run result, in bytes of JSON text. */
  maxPayloadBytes: number
  /** Largest gRPC message the server accepts, bytes. */
  maxMessageBytes: number
  /** Most runs in one EnqueueBatch. */
  maxBatchSize: number
  /** Backstop poll: how often idle workers look for work without a notification, ms. */
  pollIntervalMs: number
  /** How often expired leases are returned to the queue, ms. */
  reaperIntervalMs: number
  /** Finished runs older than this are deleted, ms; 0 keeps them forever. */
  retentionMs: number
  /** How often the retention sweep runs, ms. */
  retentionIntervalMs: number
  /** How often expired State Store entries and locks are deleted, ms. */
  stateSweepIntervalMs: number
  /** Group-commit batches of one kind that may be in flight at once. */
  writeConcurrency: number
  /** On SIGTERM, how long in-flight requests may take before connections are cut, ms. */
  shutdownGraceMs: number
  /** Log level. */
  logLevel: z.infer<typeof settings.STACKSHIFT_LOG_LEVEL>
  /** How often the database is probed for the gRPC health status, ms. */
  healthProbeIntervalMs: number
  /** Whether the Prometheus endpoint (`GET /metrics` over HTTP) is served. */
  isMetricsEnabled: boolean
  /** Interface the Prometheus endpoint binds to. */
  metricsHost: string
  /** Port of the Prometheus endpoint; 0 picks a free one. */
  metricsPort: number
  /** Priority of V8's helper threads (compiler, garbage collector): `idle` keeps them from preempting request handling (Linux). */
  backgroundThreads: z.infer<typeof settings.STACKSHIFT_BACKGROUND_THREADS>
}

/** Flag name for a setting: STACKSHIFT_LEASE_MS -> --lease-ms, DATABASE_URL -> --database-url. */
function flagName(setting: SettingName): string {
  return (
    '--' +
    setting
      .replace(/^STACKSHIFT_/, '')
      .toLowerCase()
      .replaceAll('_', '-')
  )
}

const settingByFlag = new Map((Object.keys(settings) as SettingName[]).map((name) => [flagName(name), name]))

/** Turns `--flag value` and `--flag=value` arguments into setting overrides. */
function parseFlags(argv: readonly string[]): Partial<Record<SettingName, string>> {
  const overrides: Partial<Record<SettingName, string>> = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined]
    const setting = settingByFlag.get(flag)
    if (!setting) throw new ConfigError(`unknown flag ${flag}; known flags: ${[...settingByFlag.keys()].join(', ')}`)
    const value = inline ?? argv[++i]
    if (value === undefined) throw new ConfigError(`flag ${flag} needs a value`)
    overrides[setting] = value
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
  const raw: Record<string, string | undefined> = {}
  for (const name of Object.keys(settings)) {
    const value = env[name]
    raw[name] = value === '' ? undefined : value
  }
  Object.assign(raw, parseFlags(argv))
  const parsed = envSchema.safeParse(raw)
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`)
  }
  const s = parsed.data
  return {
    databaseUrl: s.DATABASE_URL,
    host: s.STACKSHIFT_HOST,
    port: s.STACKSHIFT_PORT,
    dataDir: s.STACKSHIFT_DATA_DIR,
    embeddedPostgresPort: s.STACKSHIFT_EMBEDDED_PG_PORT,
    dbPoolSize: s.STACKSHIFT_DB_POOL_SIZE,
    leaseMs: s.STACKSHIFT_LEASE_MS,
    defaultMaxAttempts: s.STACKSHIFT_DEFAULT_MAX_ATTEMPTS,
    retryBaseMs: s.STACKSHIFT_RETRY_BASE_MS,
    retryMaxMs: s.STACKSHIFT_RETRY_MAX_MS,
    idempotencyTtlMs: s.STACKSHIFT_IDEMPOTENCY_TTL_MS,
    maxPayloadBytes: s.STACKSHIFT_MAX_PAYLOAD_BYTES,
    maxMessageBytes: s.STACKSHIFT_MAX_MESSAGE_BYTES,
    maxBatchSize: s.STACKSHIFT_MAX_BATCH_SIZE,
    pollIntervalMs: s.STACKSHIFT_POLL_INTERVAL_MS,
    reaperIntervalMs: s.STACKSHIFT_REAPER_INTERVAL_MS,
    retentionMs: s.STACKSHIFT_RETENTION_MS,
    retentionIntervalMs: s.STACKSHIFT_RETENTION_INTERVAL_MS,
    stateSweepIntervalMs: s.STACKSHIFT_STATE_SWEEP_INTERVAL_MS,
    writeConcurrency: s.STACKSHIFT_WRITE_CONCURRENCY,
    shutdownGraceMs: s.STACKSHIFT_SHUTDOWN_GRACE_MS,
    logLevel: s.STACKSHIFT_LOG_LEVEL,
    healthProbeIntervalMs: s.STACKSHIFT_HEALTH_PROBE_INTERVAL_MS,
    isMetricsEnabled: s.STACKSHIFT_METRICS === 'on',
    metricsHost: s.STACKSHIFT_METRICS_HOST,
    metricsPort: s.STACKSHIFT_METRICS_PORT,
    backgroundThreads: s.STACKSHIFT_BACKGROUND_THREADS,
  }
}
