#!/usr/bin/env node
import { ConfigError, loadConfig } from './config.js'
import type { EmbeddedPostgresHandle } from './db/embedded-postgres.js'
import { armedFailpoints } from './failpoints.js'
import { createLogger } from './logger.js'
import { startTracingFromEnvironment } from './tracing.js'
import { lowerBackgroundThreadPriority } from './tuning.js'

/** Entry point: configuration -> helper thread priority -> tracing -> database -> migrate -> listen -> signals. */
async function main(): Promise<void> {
  const config = loadConfig(process.env, process.argv.slice(2))
  const logger = createLogger(config.logLevel)
  const failpoints = armedFailpoints()
  if (failpoints.length > 0)
    logger.warn({ failpoints }, 'failpoints armed: this process kills itself when it reaches one (STACKSHIFT_FAILPOINTS)')
  // Opt-in: only when STACKSHIFT_BACKGROUND_THREADS (--background-threads) says idle.
  if (config.backgroundThreads === 'idle') {
    const lowered = await lowerBackgroundThreadPriority()
    if (lowered) logger.info(lowered, 'helper threads lowered below the event loop thread')
  }
  const tracing = startTracingFromEnvironment(process.env)
  if (tracing) logger.info('tracing on: exporting spans over OTLP')
  // Loaded after tracing starts, so its instrumentations see grpc-js and pg load.
  const { startEmbeddedPostgres, takeOverStopSignals } = await import('./db/embedded-postgres.js')
  const { startServer } = await import('./server.js')
  let embedded: EmbeddedPostgresHandle | undefined
  let databaseUrl = config.databaseUrl
  if (!databaseUrl) {
    embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPostgresPort, logger })
    databaseUrl = embedded.url
  }
  const server = await startServer({ ...config, databaseUrl }, logger).catch(async (error: unknown) => {
    await embedded?.stop()
    throw error
  })

  let isStopping = false
  const shutdown = (signal: NodeJS.Signals) => {
    if (isStopping) {
      logger.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    isStopping = true
    logger.info({ signal }, 'shutting down')
    server
      .stop()
      .then(() => embedded?.stop())
      .then(() => tracing?.shutdown())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error({ err: error }, 'shutdown failed')
          process.exit(1)
        },
      )
  }
  takeOverStopSignals()
  process.on('SIGTERM', shutdown)
  process.on('SIGINT', shutdown)
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) console.error(error.message)
  else console.error(error)
  process.exit(1)
})
