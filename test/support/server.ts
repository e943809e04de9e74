import { type Logger, type ServerConfig, type StackShiftServer, createLogger, loadConfig, startServer } from '@stackshift/server'

/** A server on 127.0.0.1 with a free port, in this process. */
export interface TestServer {
  server: StackShiftServer
  address: string
  stop(): Promise<void>
}

/**
 * Starts a server on `databaseUrl`. Defaults keep tests quick (short polls and
 * backoffs); pass overrides for what a test is about, and a logger to read
 * what the server logs.
 */
export async function startTestServer(databaseUrl: string, overrides: Partial<ServerConfig> = {}, logger?: Logger): Promise<TestServer> {
  const config: ServerConfig & { databaseUrl: string } = {
    ...loadConfig({}),
    host: '127.0.0.1',
    port: 0,
    // Several servers run in one process and files run in parallel: no fixed metrics port.
    metricsHost: '127.0.0.1',
    metricsPort: 0,
    consolePort: 0,
    retryBaseMs: 50,
    retryMaxMs: 1000,
    reaperIntervalMs: 100,
    pollIntervalMs: 500,
    shutdownGraceMs: 2000,
    logLevel: (process.env.STACKSHIFT_TEST_LOG_LEVEL as ServerConfig['logLevel'] | undefined) ?? 'silent',
    ...overrides,
    databaseUrl,
  }
  const server = await startServer(config, logger ?? createLogger(config.logLevel))
  return { server, address: `127.0.0.1:${server.port}`, stop: () => server.stop() }
}
