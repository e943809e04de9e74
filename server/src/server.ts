import { randomBytes } from 'node:crypto'
import type { Knex } from 'knex'
import type { ServerConfig } from './config.js'
import { loadConsoleBundle } from './console/console-bundle.js'
import { type ConsoleEndpoint, startConsoleEndpoint } from './console/console-server.js'
import { isLoopbackHost, resolveAuthMode } from './core/access.js'
import { apiKeyAnyUsable } from './db/queries/api-keys.js'
import { createDatabase, migrateDatabase } from './db/database.js'
import { DatabaseHealthProbe } from './db/health-probe.js'
import { Dispatcher } from './dispatch/dispatcher.js'
import { NotificationListener } from './dispatch/notification-listener.js'
import type { Logger } from './logger.js'
import { LeaseReaper } from './maintenance/lease-reaper.js'
import { RetentionSweeper } from './maintenance/retention.js'
import { StateSweeper } from './maintenance/state-sweeper.js'
import { ScheduleFiring } from './maintenance/schedule-firing.js'
import { Timers } from './maintenance/timers.js'
import { type MetricsEndpoint, startMetricsEndpoint } from './observability/metrics-endpoint.js'
import { ServerMetrics } from './observability/metrics.js'
import { ApiKeys } from './operations/api-keys.js'
import { BulkActions } from './operations/bulk-actions.js'
import { RunCanceller } from './operations/cancellation.js'
import { ChildRuns } from './operations/child-runs.js'
import { FlowPolicies } from './operations/flow-policies.js'
import { RunClaims } from './operations/claim.js'
import { RunEnqueuer } from './operations/enqueue.js'
import { EventReads, EventSender } from './operations/events.js'
import { LeaseWrites } from './operations/lease-writes.js'
import { ReadyAnnouncer } from './operations/ready-announcer.js'
import { QueueStats } from './operations/queue-stats.js'
import { RunCopier } from './operations/run-copies.js'
import { RunReads, RunWaiters } from './operations/run-reads.js'
import { ScheduledRuns, Schedules } from './operations/schedules.js'
import { StateStore } from './operations/state-store.js'
import { Suspensions } from './operations/waits.js'
import { WorkerRegistry } from './operations/worker-registry.js'
import { createAccessInterceptor } from './rpc/access-interceptor.js'
import { createAdminService } from './rpc/admin-service.js'
import { createJobService } from './rpc/job-service.js'
import { createConnectUnary } from './rpc/connect-unary.js'
import { type StackShiftServices, bindGrpcServer, createGrpcServer } from './rpc/grpc-server.js'
import { createOperatorService } from './rpc/operator-service.js'
import { createPrincipalResolver } from './rpc/principal.js'
import { createRunService } from './rpc/run-service.js'
import { createScheduleService } from './rpc/schedule-service.js'
import { createStateService } from './rpc/state-service.js'
import { loadServerTls } from './rpc/tls.js'
import { createWorkerService } from './rpc/worker-service.js'

/**
 * How often the runs WaitForRun calls wait for are checked, should a finish
 * notice be lost: a waiter returns at most this long after its run finished.
 */
const waitRecheckIntervalMs = 2000
/** How often each server writes down the workers connected to it (ListWorkers shows those reported within three). */
const workerReportIntervalMs = 5000
/** Bulk actions: how often a server looks for one no server works on, runs per transaction, and how long a taker holds one. */
const bulkActionSettings = { intervalMs: 2000, batchSize: 100, leaseMs: 30_000 }

/** A running StackShift server. */
export interface StackShiftServer {
  /** The port the gRPC server listens on (useful when configured as 0). */
  port: number
  /** The port of the Prometheus endpoint (`GET /metrics`); undefined when metrics are off. */
  metricsPort: number | undefined
  /** The port of the web console and its Connect endpoint; undefined when the console is off. */
  consolePort: number | undefined
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
  // First: TLS files that are missing or unusable stop the start before it touches the database.
  const tls = await loadServerTls(config, logger)
  // Migrations run on connections of their own, without the statement
  // timeout: one may rewrite a large table, and a server waiting for another
  // one's migration waits in a statement too.
  const migrator = createDatabase({ url: config.databaseUrl, poolSize: 2, logger })
  try {
    await migrateDatabase(migrator)
  } finally {
    await migrator.destroy()
  }
  const db = createDatabase({
    url: config.databaseUrl,
    logger,
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
  const policies = new FlowPolicies({ db, logger })
  await policies.load()
  const claims = new RunClaims({
    db,
    metrics,
    logger,
    policies,
    // Room for the response around one task (results and revocations leave in messages of their own then).
    maxTaskBytes: config.maxMessageBytes - 1024,
    release: (leases) => leaseWrites.releaseUndelivered(leases),
    fail: (failure) => leaseWrites.failRun({ ...failure, namespace: '*' }),
  })
  const dispatcher: Dispatcher = new Dispatcher({ claims, logger, pollIntervalMs: config.pollIntervalMs })
  const canceller = new RunCanceller({ db, metrics, logger })
  const timers: Timers = new Timers({ db, logger, announcer, canceller, pollIntervalMs: config.pollIntervalMs })
  const reaper = new LeaseReaper({ db, logger, announcer, backoff, metrics, intervalMs: config.reaperIntervalMs })
  const retention = new RetentionSweeper({ db, logger, retentionMs: config.retentionMs, intervalMs: config.retentionIntervalMs })
  const stateSweeper = new StateSweeper({ db, logger, intervalMs: config.stateSweepIntervalMs })
  const enqueuer = new RunEnqueuer({
    db,
    announcer,
    metrics,
    policies,
    writeConcurrency: config.writeConcurrency,
    reserveIdle: (namespace, queue, job) => dispatcher.reserveIdle(namespace, queue, job),
  })
  const waiters = new RunWaiters({ db, logger, recheckIntervalMs: waitRecheckIntervalMs })
  const reads = new RunReads({ db, waiters, policies })
  const suspensions = new Suspensions({ db, announcer, childRuns: new ChildRuns({ db, announcer, metrics, policies }) })
  const events = new EventSender({ db, announcer })
  const copier = new RunCopier({ db, announcer, metrics, policies })
  const bulkActions = new BulkActions({ db, copier, metrics, logger, ...bulkActionSettings })
  const eventReads = new EventReads({ db })
  const scheduledRuns = new ScheduledRuns({
    announcer,
    metrics,
    policies,
    maxAttempts: config.defaultMaxAttempts,
    idempotencyTtlMs: config.idempotencyTtlMs,
  })
  const scheduleFiring = new ScheduleFiring({
    db,
    runs: scheduledRuns,
    metrics,
    logger,
    pollIntervalMs: config.schedulePollIntervalMs,
    batchSize: config.scheduleBatchSize,
  })
  const schedules = new Schedules({ db, runs: scheduledRuns, logger, wake: () => scheduleFiring.wake() })
  const stateStore = new StateStore({ db })
  const authMode = resolveAuthMode(config.auth, config.host)
  const keys = new ApiKeys({ db, adminKey: config.adminKey })
  const principalOf = createPrincipalResolver(authMode === 'required')

  const workerService = createWorkerService({ config, logger, claims, dispatcher, leaseWrites, suspensions, policies, principalOf })
  const workerRegistry = new WorkerRegistry({
    db,
    logger,
    serverId,
    reportIntervalMs: workerReportIntervalMs,
    localWorkers: () => workerService.streams,
  })
  const listener = new NotificationListener({
    url: config.databaseUrl,
    logger,
    onReady: (notice) => {
      if (!announcer.isOwnNotice(notice.origin)) dispatcher.wake(notice.namespace, notice.queues)
    },
    onRunFinished: (runId) => waiters.notify(runId),
    onRunCancelled: (namespace, runId) => workerService.revoke(namespace, [{ runId, reason: 'cancelled' }]),
    onApiKeyRevoked: (keyId) => keys.forget(keyId),
    // A limit may have been raised: held runs may start now.
    onFlowPoliciesChanged: () => {
      policies.reload()
      dispatcher.wakeAll()
    },
    onReconnected: () => {
      policies.reload()
      dispatcher.wakeAll()
      waiters.notifyAll()
      keys.forgetAll()
    },
  })
  await listener.start()

  const runService = createRunService({ config, logger, enqueuer, reads, events, canceller })
  const services: StackShiftServices = {
    runs: runService.service,
    workers: workerService.service,
    state: createStateService({ config, logger, store: stateStore }),
    admin: createAdminService({ logger, keys, principalOf }),
    operator: createOperatorService({
      config,
      logger,
      copier,
      bulkActions,
      eventReads,
      workers: workerRegistry,
      queueStats,
      principalOf,
      isAuthRequired: authMode === 'required',
    }),
    schedules: createScheduleService({ config, logger, schedules }),
    jobs: createJobService({ logger, policies }),
  }
  const { server: grpcServer, setHealth } = createGrpcServer({
    maxMessageBytes: config.maxMessageBytes,
    maxConcurrentStreams: config.maxConcurrentStreams,
    services,
    interceptors: authMode === 'required' ? [createAccessInterceptor({ keys, logger })] : [],
  })
  await warnAboutAccess({ authMode, config, db, logger })
  const port = await bindGrpcServer(grpcServer, config.host, config.port, tls.credentials)
  let metricsEndpoint: MetricsEndpoint | undefined
  let consoleEndpoint: ConsoleEndpoint | undefined
  try {
    if (config.isMetricsEnabled) {
      metricsEndpoint = await startMetricsEndpoint({
        host: config.metricsHost,
        port: config.metricsPort,
        token: config.metricsToken,
        metrics,
        logger,
      })
    }
    if (config.isConsoleEnabled) {
      // The console answers on the gRPC server's interface, with the same services and access checks.
      consoleEndpoint = await startConsoleEndpoint({
        host: config.host,
        port: config.consolePort,
        connect: createConnectUnary({ services, keys: authMode === 'required' ? keys : undefined, logger }),
        bundle: await loadConsoleBundle(),
        pageConfig: { traceUrl: config.consoleTraceUrl ?? null },
        maxMessageBytes: config.maxMessageBytes,
        tls: tls.mode === 'off' ? undefined : tls,
        logger,
      })
    }
  } catch (error) {
    grpcServer.forceShutdown()
    tls.close()
    await metricsEndpoint?.close()
    await listener.stop()
    await db.destroy()
    throw error
  }

  dispatcher.start()
  timers.start()
  reaper.start()
  retention.start()
  stateSweeper.start()
  bulkActions.start()
  scheduleFiring.start()
  workerRegistry.start()

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

  logger.info({ port, host: config.host, serverId, tls: tls.mode }, 'StackShift server listening')

  let stopping: Promise<void> | undefined
  return {
    port,
    metricsPort: metricsEndpoint?.port,
    consolePort: consoleEndpoint?.port,
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
        tls.close()
        waiters.stopRechecks()
        await Promise.all([enqueuer.drain(), leaseWrites.drain()])
        await Promise.all([
          timers.stop(),
          reaper.stop(),
          retention.stop(),
          stateSweeper.stop(),
          bulkActions.stop(),
          scheduleFiring.stop(),
          workerRegistry.stop(),
          listener.stop(),
          databaseProbe.close(),
          metricsEndpoint?.close(),
          consoleEndpoint?.close(),
        ])
        await db.destroy()
        logger.info('StackShift server stopped')
      })()
      return stopping
    },
  }
}

/**
 * Says at start who may call: keys required or not, and why. A server that
 * requires keys and has none that work (no STACKSHIFT_ADMIN_KEY, none
 * stored) refuses every call; say so. One that listens beyond loopback with
 * auth off was told to; say that too.
 */
async function warnAboutAccess(options: { authMode: 'required' | 'off'; config: ServerConfig; db: Knex; logger: Logger }): Promise<void> {
  const { authMode, config, db, logger } = options
  if (authMode === 'off') {
    if (isLoopbackHost(config.host)) logger.info({ host: config.host }, 'auth off: the server listens on loopback only')
    else
      logger.warn(
        { host: config.host },
        'auth off (STACKSHIFT_AUTH=off) on a server that listens beyond loopback: any client that reaches it may do anything',
      )
    return
  }
  logger.info({ host: config.host, adminKey: config.adminKey !== undefined }, 'auth required: every call needs an API key')
  if (config.adminKey === undefined && !(await apiKeyAnyUsable(db))) {
    logger.warn('auth is required but there is no usable API key and no STACKSHIFT_ADMIN_KEY: every call will be refused')
  }
}
