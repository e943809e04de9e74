#!/usr/bin/env node
import { ConfigError, loadConfig } from './config.js'
import { type EmbeddedPostgresHandle, startEmbeddedPostgres } from './db/embedded-postgres.js'
import { createLogger } from './logger.js'
import { startServer } from './server.js'

/** Entry point: configuration -> database -> migrate -> listen -> signals. */
async function main(): Promise<void> {
  const config = loadConfig(process.env, process.argv.slice(2))
  const logger = createLogger(config.logLevel)
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
      .then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error({ err: error }, 'shutdown failed')
          process.exit(1)
        },
      )
  }
  process.on('SIGTERM', shutdown)
  process.on('SIGINT', shutdown)
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) console.error(error.message)
  else console.error(error)
  process.exit(1)
})
