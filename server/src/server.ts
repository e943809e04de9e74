import { randomBytes } from 'node:crypto'
import type { Knex } from 'knex'
import type { ServerConfig } from './config.js'
import { createDatabase, migrateDatabase } from './db/database.js'
import { DatabaseHealthProbe } from './db/health-probe.js'
import { Dispatcher } from './dispatch/dispatcher.js'
import { NotificationListener } from './dispatch/notification-listener.js'
import type { Logger } from './logger.js'
import { LeaseReaper } from './maintenance/lease-reaper.js'
import { RetentionSweeper } from './maintenance/retention.js'
import { StateSweeper } from './maintenance/state-sweeper.js'
import { Timers } from './maintenance/timers.js'
import { type MetricsEndpoint, startMetricsEndpoint } from './observability/metrics-endpoint.js'
import { ServerMetrics } from './observability/metrics.js'
import { RunCanceller } from './operations/cancellation.js'
import { RunClaims } from './operations/claim.js'
import { RunEnqueuer } from './operations/enqueue.js'
import { EventSender } from './operations/events.js'
import { LeaseWrites } from './operations/lease-writes.js'
import { ReadyAnnouncer } from './operations/ready-announcer.js'
import { QueueStats } from './operations/queue-stats.js'
import { RunReads, RunWaiters } from './operations/run-reads.js'
import { StateStore } from './operations/state-store.js'
import { Suspensions } from './operations/waits.js'
import { bindGrpcServer, createGrpcServer } from './rpc/grpc-server.js'
import { createRunService } from './rpc/run-service.js'
import { createStateService } from './rpc/state-service.js'
import { createWorkerService } from './rpc/worker-service.js'

/** A running StackShift server. */
export interface StackShiftServer {
  /** The port the gRPC server listens on (useful when configured as 0). */
  port: number
  /** The port of the Prometheus endpoint (`GET /metrics`); undefined when metrics are off. */
  metricsPort: number | undefined
  /** This server's metrics (its own Prometheus registry). */
  metrics: ServerMetrics
  /** The connection pool, for tests and tools. */
  db: Knex
  /** Connected worker streams and their free slots. */
  stats(): { workers: number; freeSlots: number }
  /**
   * Graceful shutdown: stop taking work, end worker streams (they reconnect to
   * another server) and enqueue streams (once what they carried is answered),
   * let in-flight requests finish within the grace period,
   * commit pending writes, and close the database pool.
   */
  stop(): Promise<void>
}

/** Connects to the database, migrates it, and serves gRPC. */
export async function startServer(config: ServerConfig & { databaseUrl: string }, logger: Logger): Promise<StackShiftServer> {
  const serverId = randomBytes(8).toString('hex')
  // Migrations run on connections of their own, without the statement
  // timeout: one may rewrite a large table, and a server waiting for another
  // one's migration waits in a statement too.
  const migrator = createDatabase({ url: config.databaseUrl, poolSize: 2 })
  try {
    await migrateDatabase(migrator)
  } finally {
    await migrator.destroy()
  }
  const db = createDatabase({
    url: config.databaseUrl,
    poolSize: config.dbPoolSize,
    statementTimeoutMs: config.dbStatementTimeoutMs,
    idleInTransactionTimeoutMs: config.dbIdleInTransactionTimeoutMs,
  })

  const backoff = { baseMs: config.retryBaseMs, maxMs: config.retryMaxMs }
  const queueStats = new QueueStats({ db })
  const metrics = new ServerMetrics({
    logger,
    readQueueDepths: () => queueStats.depths(),
    readQueueCapacity: () => dispatcher.statsByQueue(),
  })
  // The announcer, dispatcher and timers refer to each other; late-bound closures break the cycle.
  const announcer = new ReadyAnnouncer({
    serverId,
    wakeWorkers: (namespace, queues) => dispatcher.wake(namespace, queues),
    wakeTimers: (dueInMs) => timers.wakeWithin(dueInMs),
  })
  const leaseWrites = new LeaseWrites({ db, announcer, backoff, metrics, logger, writeConcurrency: config.writeConcurrency })
  const claims = new RunClaims({
    db,
    metrics,
    logger,
    // Room for the response around one task (results and revocations leave in messages of their own then).
    maxTaskBytes: config.maxMessageBytes - 1024,
    release: (leases) => leaseWrites.releaseUndelivered(leases),
    fail: (failure) => leaseWrites.failRun(failure),
  })
  const dispatcher: Dispatcher = new Dispatcher({ claims, logger, pollIntervalMs: config.pollIntervalMs })
  const timers: Timers = new Timers({ db, logger, announcer, pollIntervalMs: config.pollIntervalMs })
  const reaper = new LeaseReaper({ db, logger, announcer, backoff, metrics, intervalMs: config.reaperIntervalMs })
  const retention = new RetentionSweeper({ db, logger, retentionMs: config.retentionMs, intervalMs: config.retentionIntervalMs })
  const stateSweeper = new StateSweeper({ db, logger, intervalMs: config.stateSweepIntervalMs })
  const enqueuer = new RunEnqueuer({
    db,
    announcer,
    metrics,
    writeConcurrency: config.writeConcurrency,
    reserveIdle: (namespace, queue, job) => dispatcher.reserveIdle(namespace, queue, job),
  })
  const waiters = new RunWaiters()
  const reads = new RunReads({ db, waiters })
  const suspensions = new Suspensions({ db, announcer })
  const events = new EventSender({ db, announcer })
  const canceller = new RunCanceller({ db, metrics, logger })
  const stateStore = new StateStore({ db })

  const workerService = createWorkerService({ config, logger, claims, dispatcher, leaseWrites, suspensions })
  const listener = new NotificationListener({
    url: config.databaseUrl,
    logger,
    onReady: (notice) => {
      if (!announcer.isOwnNotice(notice.origin)) dispatcher.wake(notice.namespace, notice.queues)
    },
    onRunFinished: (runId) => waiters.notify(runId),
    onRunCancelled: (runId) => workerService.revoke([{ runId, reason: 'cancelled' }]),
    onReconnected: () => {
      dispatcher.wakeAll()
      waiters.notifyAll()
    },
  })
  await listener.start()

  const runService = createRunService({ config, logger, enqueuer, reads, events, canceller })
  const { server: grpcServer, setHealth } = createGrpcServer({
    maxMessageBytes: config.maxMessageBytes,
    maxConcurrentStreams: config.maxConcurrentStreams,
    services: {
      runs: runService.service,
      workers: workerService.service,
      state: createStateService({ config, logger, store: stateStore }),
    },
  })
  const port = await bindGrpcServer(grpcServer, config.host, config.port)
  let metricsEndpoint: MetricsEndpoint | undefined
  if (config.isMetricsEnabled) {
    try {
      metricsEndpoint = await startMetricsEndpoint({ host: config.metricsHost, port: config.metricsPort, metrics, logger })
    } catch (error) {
      grpcServer.forceShutdown()
      await listener.stop()
      await db.destroy()
      throw error
    }
  }

  dispatcher.start()
  timers.start()
  reaper.start()
  retention.start()
  stateSweeper.start()

  // Health follows the database: a server that cannot reach it should not
  // get traffic. It is asked on a connection of its own, so a pool busy with
  // slow statements does not read as a dead database.
  const databaseProbe = new DatabaseHealthProbe({ url: config.databaseUrl, timeoutMs: Math.max(1000, config.healthProbeIntervalMs) })
  let isShuttingDown = false
  // One probe at a time: against an unreachable database a probe can take as
  // long as its timeout, longer than a short interval.
  let isProbing = false
  const healthProbe = setInterval(() => {
    if (isProbing) return
    isProbing = true
    databaseProbe
      .check()
      .then(
        () => !isShuttingDown && setHealth('SERVING'),
        (error: unknown) => {
          logger.warn({ err: error }, 'database health probe failed')
          if (!isShuttingDown) setHealth('NOT_SERVING')
        },
      )
      .finally(() => (isProbing = false))
  }, config.healthProbeIntervalMs)
  healthProbe.unref()

  logger.info({ port, host: config.host, serverId }, 'StackShift server listening')

  let stopping: Promise<void> | undefined
  return {
    port,
    metricsPort: metricsEndpoint?.port,
    metrics,
    db,
    stats: () => {
      const { consumers, freeSlots } = dispatcher.stats()
      return { workers: consumers, freeSlots }
    },
    stop: () => {
      stopping ??= (async () => {
        isShuttingDown = true
        clearInterval(healthProbe)
        setHealth('NOT_SERVING')
        workerService.shutdown()
        runService.shutdown()
        await dispatcher.stop()
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            logger.warn('grace period over; closing remaining connections')
            grpcServer.forceShutdown()
            resolve()
          }, config.shutdownGraceMs)
          grpcServer.tryShutdown(() => {
            clearTimeout(force)
            resolve()
          })
        })
        await Promise.all([enqueuer.drain(), leaseWrites.drain()])
        await Promise.all([
          timers.stop(),
          reaper.stop(),
          retention.stop(),
          stateSweeper.stop(),
          listener.stop(),
          databaseProbe.close(),
          metricsEndpoint?.close(),
        ])
        await db.destroy()
        logger.info('StackShift server stopped')
      })()
      return stopping
    },
  }
}
