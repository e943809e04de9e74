import { readFileSync } from 'node:fs'
import { ConfigError, type ServerConfig, loadConfig } from '@stackshift/server'
import { expect, expectTypeOf, it } from 'vitest'
import { readConfigTable, readmeFile } from '../../scripts/config-table.js'
import { flagName, settings } from '../../server/src/config.js'

it('uses the documented default of every setting when nothing is set', () => {
  // Every setting, so that a new one, or a changed default, has to be written here too.
  expect(loadConfig({})).toStrictEqual({
    databaseUrl: undefined,
    host: '127.0.0.1',
    port: 50_051,
    dataDir: '.stackshift',
    auth: 'auto',
    adminKey: undefined,
    tlsCertFile: undefined,
    tlsKeyFile: undefined,
    tlsClientCaFile: undefined,
    embeddedPostgresPort: 54_329,
    dbPoolSize: 10,
    dbStatementTimeoutMs: 60_000,
    dbIdleInTransactionTimeoutMs: 60_000,
    leaseMs: 30_000,
    defaultMaxAttempts: 5,
    retryBaseMs: 1000,
    retryMaxMs: 3_600_000,
    idempotencyTtlMs: 86_400_000,
    maxPayloadBytes: 1_048_576,
    maxMessageBytes: 16_777_216,
    maxConcurrentStreams: 10_000,
    maxBatchSize: 10_000,
    pollIntervalMs: 2000,
    reaperIntervalMs: 1000,
    retentionMs: 2_592_000_000,
    retentionIntervalMs: 60_000,
    stateSweepIntervalMs: 10_000,
    schedulePollIntervalMs: 1000,
    scheduleBatchSize: 1000,
    writeConcurrency: 2,
    shutdownGraceMs: 10_000,
    logLevel: 'info',
    healthProbeIntervalMs: 5000,
    isMetricsEnabled: true,
    metricsHost: '127.0.0.1',
    metricsToken: undefined,
    metricsPort: 9464,
    isConsoleEnabled: true,
    consolePort: 8233,
    consoleTraceUrl: undefined,
    backgroundThreads: 'normal',
  })
})

it("applies each default as the README's settings table documents it", () => {
  const rows = readConfigTable(readFileSync(readmeFile, 'utf8'))
    .split('\n')
    .slice(2)
    .map((row) => row.split(' | ').map((cell) => cell.replace(/^\| /, '').replaceAll('`', '')))
  const nameByVariable = new Map(Object.entries(settings).map(([name, setting]) => [setting.env, name as keyof ServerConfig]))
  expect(rows.map(([variable]) => variable)).toEqual([...nameByVariable.keys()])
  const config = loadConfig({})
  for (const [variable, , documented] of rows) {
    // As a user reads the table: unset, on/off, a number, or text.
    const expected =
      documented === 'unset'
        ? undefined
        : documented === 'on' || documented === 'off'
          ? documented === 'on'
          : /^\d+$/.test(documented!)
            ? Number(documented)
            : documented
    expect(config[nameByVariable.get(variable!)!], variable).toBe(expected)
  }
})

it('reads environment variables and lets flags override them', () => {
  const config = loadConfig({ STACKSHIFT_PORT: '6000', STACKSHIFT_LEASE_MS: '10000', DATABASE_URL: 'postgres://db/x' }, [
    '--port',
    '7000',
    '--log-level=debug',
  ])
  expect(config).toMatchObject({ port: 7000, leaseMs: 10_000, logLevel: 'debug', databaseUrl: 'postgres://db/x' })
})

it('treats an empty variable as unset', () => {
  expect(loadConfig({ DATABASE_URL: '', STACKSHIFT_PORT: '' })).toMatchObject({ databaseUrl: undefined, port: 50051 })
})

it('names the setting that is invalid', () => {
  expect(() => loadConfig({ STACKSHIFT_LEASE_MS: '100' })).toThrow(
    new ConfigError('invalid configuration: STACKSHIFT_LEASE_MS: Too small: expected number to be >=500'),
  )
  expect(() => loadConfig({ STACKSHIFT_PORT: 'http' })).toThrow(/STACKSHIFT_PORT/)
  expect(() => loadConfig({}, ['--no-such-flag', '1'])).toThrow(/unknown flag --no-such-flag/)
  expect(() => loadConfig({}, ['--port'])).toThrow(new ConfigError('flag --port needs a value'))
})

it('serves metrics on 9464 unless turned off, and probes health every 5 s unless told otherwise', () => {
  expect(loadConfig({})).toMatchObject({ isMetricsEnabled: true, metricsHost: '127.0.0.1', metricsPort: 9464, healthProbeIntervalMs: 5000 })
  expect(loadConfig({ STACKSHIFT_METRICS: 'off' }, ['--metrics-port', '0', '--health-probe-interval-ms=250'])).toMatchObject({
    isMetricsEnabled: false,
    metricsPort: 0,
    healthProbeIntervalMs: 250,
  })
  expect(() => loadConfig({ STACKSHIFT_METRICS: 'yes' })).toThrow(/STACKSHIFT_METRICS/)
})

it("leaves V8's helper threads at normal priority unless told to lower them", () => {
  expect(loadConfig({}).backgroundThreads).toBe('normal')
  expect(loadConfig({}, ['--background-threads', 'idle']).backgroundThreads).toBe('idle')
  expect(() => loadConfig({ STACKSHIFT_BACKGROUND_THREADS: 'low' })).toThrow(/STACKSHIFT_BACKGROUND_THREADS/)
})

it('derives each flag from its variable: the STACKSHIFT_ prefix dropped, lower case, dashes', () => {
  expect(flagName('STACKSHIFT_LEASE_MS')).toBe('--lease-ms')
  expect(flagName('DATABASE_URL')).toBe('--database-url')
  expect(flagName('STACKSHIFT_EMBEDDED_PG_PORT')).toBe('--embedded-pg-port')
  expect(loadConfig({}, ['--database-url', 'postgres://db/y', '--embedded-pg-port=0', '--metrics', 'off'])).toMatchObject({
    databaseUrl: 'postgres://db/y',
    embeddedPostgresPort: 0,
    isMetricsEnabled: false,
  })
})

it('gives every setting a variable and a flag of its own', () => {
  const variables = Object.values(settings).map((setting) => setting.env)
  expect(new Set(variables).size).toBe(variables.length)
  expect(new Set(variables.map(flagName)).size).toBe(variables.length)
})

it('rejects an unknown flag and lists the known ones', () => {
  expect(() => loadConfig({}, ['--lease', '1000'])).toThrow(ConfigError)
  expect(() => loadConfig({}, ['--lease', '1000'])).toThrow(/^unknown flag --lease; known flags: --database-url, --host, .*--lease-ms, /)
  // A value given where a flag belongs is not taken for one.
  expect(() => loadConfig({}, ['--port', '7000', '7001'])).toThrow(/unknown flag 7001/)
})

it('names the variable of a bad value given by flag, and every bad setting at once', () => {
  expect(() => loadConfig({}, ['--lease-ms', '100'])).toThrow(
    new ConfigError('invalid configuration: STACKSHIFT_LEASE_MS: Too small: expected number to be >=500'),
  )
  expect(() => loadConfig({ STACKSHIFT_LOG_LEVEL: 'loud' }, ['--db-pool-size=1.5'])).toThrow(
    /^invalid configuration: STACKSHIFT_DB_POOL_SIZE: .*; STACKSHIFT_LOG_LEVEL: .*"trace"/,
  )
})

it('types each field by its setting: numbers, unions for choices, booleans for on/off, undefined when unset', () => {
  // Checked by the compiler (tsc -b), not at run time.
  expectTypeOf<ServerConfig['leaseMs']>().toEqualTypeOf<number>()
  expectTypeOf<ServerConfig['host']>().toEqualTypeOf<string>()
  expectTypeOf<ServerConfig['databaseUrl']>().toEqualTypeOf<string | undefined>()
  expectTypeOf<ServerConfig['isMetricsEnabled']>().toEqualTypeOf<boolean>()
  expectTypeOf<ServerConfig['backgroundThreads']>().toEqualTypeOf<'idle' | 'normal'>()
  expectTypeOf<ServerConfig['logLevel']>().toEqualTypeOf<'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent'>()
  expectTypeOf(loadConfig({})).toEqualTypeOf<ServerConfig>()
})
