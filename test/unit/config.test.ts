import { ConfigError, loadConfig } from '@stackshift/server'
import { expect, it } from 'vitest'

it('uses documented defaults when nothing is set', () => {
  const config = loadConfig({})
  expect(config).toMatchObject({
    databaseUrl: undefined,
    host: '0.0.0.0',
    port: 50051,
    dataDir: '.stackshift',
    leaseMs: 30_000,
    defaultMaxAttempts: 5,
    idempotencyTtlMs: 86_400_000,
    maxPayloadBytes: 1_048_576,
    pollIntervalMs: 2000,
  })
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
  expect(loadConfig({})).toMatchObject({ isMetricsEnabled: true, metricsHost: '0.0.0.0', metricsPort: 9464, healthProbeIntervalMs: 5000 })
  expect(loadConfig({ STACKSHIFT_METRICS: 'off' }, ['--metrics-port', '0', '--health-probe-interval-ms=250'])).toMatchObject({
    isMetricsEnabled: false,
    metricsPort: 0,
    healthProbeIntervalMs: 250,
  })
  expect(() => loadConfig({ STACKSHIFT_METRICS: 'yes' })).toThrow(/STACKSHIFT_METRICS/)
})

it("lowers V8's helper threads unless told to leave them at normal priority", () => {
  expect(loadConfig({}).backgroundThreads).toBe('idle')
  expect(loadConfig({}, ['--background-threads', 'normal']).backgroundThreads).toBe('normal')
  expect(() => loadConfig({ STACKSHIFT_BACKGROUND_THREADS: 'low' })).toThrow(/STACKSHIFT_BACKGROUND_THREADS/)
})
