/** @stackshift/server: run the StackShift server inside another program (tests, tools, custom entry points). */
export { type ServerConfig, ConfigError, loadConfig } from './config.js'
export { type EmbeddedPostgresHandle, type EmbeddedPostgresOptions, findFreePort, startEmbeddedPostgres } from './db/embedded-postgres.js'
export { type FailpointName, failpointNames } from './failpoints.js'
export { type Logger, createLogger } from './logger.js'
export { type StackShiftServer, startServer } from './server.js'
