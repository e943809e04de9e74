import type { Knex } from 'knex'
import { type ConnectedWorkerRecord, workerForgetServer, workerList, workerReport } from '../db/queries/workers.js'
import type { Logger } from '../logger.js'
import { PeriodicTask } from '../maintenance/periodic-task.js'

/** What a server knows of one of its worker streams. */
export interface LocalWorker {
  streamId: string
  namespace: string
  workerId: string
  queues: string[]
  jobs: string[]
  sdk: string
  connectedAt: Date | undefined
  freeSlots(): number
}

/**
 * ListWorkers across servers: each server writes the workers connected to it
 * into the workers table every `reportIntervalMs` (one statement, whatever
 * their number), and forgets them when it stops. A listing shows the workers
 * some server reported within three intervals, so a server that died drops
 * out of it within that time, and its rows are deleted an hour later.
 */
export class WorkerRegistry {
  private readonly task: PeriodicTask

  constructor(
    private readonly deps: {
      db: Knex
      logger: Logger
      serverId: string
      reportIntervalMs: number
      /** This server's worker streams now. */
      localWorkers: () => Iterable<LocalWorker>
    },
  ) {
    this.task = new PeriodicTask({
      name: 'worker report',
      logger: deps.logger,
      intervalMs: deps.reportIntervalMs,
      run: () => this.report(),
    })
  }

  start(): void {
    this.task.start()
  }

  /** Stops reporting and forgets this server's workers. */
  async stop(): Promise<void> {
    await this.task.stop()
    await workerForgetServer(this.deps.db, { serverId: this.deps.serverId }).catch((error: unknown) =>
      this.deps.logger.warn({ err: error }, 'could not forget the workers of this server'),
    )
  }

  list(namespace: string): Promise<ConnectedWorkerRecord[]> {
    return workerList(this.deps.db, { namespace, seenWithinMs: 3 * this.deps.reportIntervalMs })
  }

  private async report(): Promise<undefined> {
    const workers = [...this.deps.localWorkers()].flatMap((worker) =>
      worker.connectedAt
        ? [
            {
              streamId: worker.streamId,
              namespace: worker.namespace,
              workerId: worker.workerId,
              queues: worker.queues,
              jobs: worker.jobs,
              freeSlots: worker.freeSlots(),
              sdk: worker.sdk,
              connectedAt: worker.connectedAt,
            },
          ]
        : [],
    )
    await workerReport(this.deps.db, { serverId: this.deps.serverId, workers })
    return undefined
  }
}
