import type { Metadata } from '@grpc/grpc-js'
import {
  type BulkAction,
  BulkActionStatus,
  type OperatorServiceServer,
  type QueueStats as QueueStatsMessage,
  type RunSelection as RunSelectionMessage,
} from '@stackshift/proto/operator-service'
import { RunStatus } from '@stackshift/proto/run'
import type { ServerConfig } from '../config.js'
import type { Principal } from '../core/access.js'
import type { BulkActionRecord, RunSelection } from '../core/bulk-action.js'
import type { Logger } from '../logger.js'
import type { BulkActions } from '../operations/bulk-actions.js'
import type { EventReads } from '../operations/events.js'
import type { QueueStats, QueueSummary } from '../operations/queue-stats.js'
import type { RunCopier } from '../operations/run-copies.js'
import type { WorkerRegistry } from '../operations/worker-registry.js'
import { toScopeMessage } from './admin-requests.js'
import { runStatusToProto, toEventMessage, toRunMessage } from './convert.js'
import { unaryHandler } from './error-map.js'
import {
  encodeEventCursor,
  parseGetBulkAction,
  parseGetQueueStats,
  parseListBulkActions,
  parseListEvents,
  parseListWorkers,
  parseReplayRun,
  parseRerunRun,
  parseStartBulkAction,
  toBulkActionKindMessage,
} from './operator-requests.js'

function toSelectionMessage(selection: RunSelection): RunSelectionMessage {
  return {
    queue: selection.queue ?? '',
    job: selection.job ?? '',
    status: selection.status ? runStatusToProto[selection.status] : RunStatus.RUN_STATUS_UNSPECIFIED,
    createdAfter: selection.createdAfter,
    createdBefore: selection.createdBefore,
    payloadMatchJson: selection.payloadMatchJson ?? '',
  }
}

function toBulkActionMessage(action: BulkActionRecord): BulkAction {
  return {
    id: action.id,
    namespace: action.namespace,
    kind: toBulkActionKindMessage(action.kind),
    selection: toSelectionMessage(action.selection),
    fromStepId: action.fromStepId,
    status: action.status === 'running' ? BulkActionStatus.BULK_ACTION_STATUS_RUNNING : BulkActionStatus.BULK_ACTION_STATUS_COMPLETED,
    handled: action.handled,
    skipped: action.skipped,
    createdAt: action.createdAt,
    updatedAt: action.updatedAt,
    finishedAt: action.finishedAt,
  }
}

function toQueueStatsMessage(summary: QueueSummary): QueueStatsMessage {
  return {
    queue: summary.queue,
    ready: summary.ready,
    delayed: summary.delayed,
    waiting: summary.waiting,
    running: summary.running,
    minutes: summary.minutes.map((minute) => ({
      minute: minute.minute,
      completed: minute.completed,
      failed: minute.failed,
      started: minute.started,
      meanStartLatencyMs: minute.meanStartLatencyMs,
    })),
  }
}

/** OperatorService: validate, call the operation, convert. No SQL and no status codes here. */
export function createOperatorService(deps: {
  config: ServerConfig
  logger: Logger
  copier: RunCopier
  bulkActions: BulkActions
  eventReads: EventReads
  workers: WorkerRegistry
  queueStats: QueueStats
  principalOf: (metadata: Metadata) => Principal
  isAuthRequired: boolean
}): OperatorServiceServer {
  const { config, logger, copier, bulkActions } = deps
  return {
    rerunRun: unaryHandler(logger, async (request) => {
      const run = await copier.rerun(parseRerunRun(request, config))
      logger.info({ runId: run.id, sourceRunId: run.sourceRunId }, 'run rerun')
      return { run: toRunMessage(run) }
    }),
    replayRun: unaryHandler(logger, async (request) => {
      const run = await copier.replay(parseReplayRun(request))
      logger.info({ runId: run.id, sourceRunId: run.sourceRunId, fromStepId: run.replayedFromStepId }, 'run replayed')
      return { run: toRunMessage(run) }
    }),
    startBulkAction: unaryHandler(logger, async (request) => {
      const { isDryRun, ...action } = parseStartBulkAction(request)
      if (isDryRun) return { action: undefined, ...(await bulkActions.dryRun(action)) }
      const started = await bulkActions.begin(action)
      return { action: toBulkActionMessage(started.action), matched: started.matched, skipped: started.skipped }
    }),
    getBulkAction: unaryHandler(logger, async (request) => {
      const { namespace, id } = parseGetBulkAction(request)
      return { action: toBulkActionMessage(await bulkActions.get(namespace, id)) }
    }),
    listBulkActions: unaryHandler(logger, async (request) => {
      const { namespace, limit } = parseListBulkActions(request)
      return { actions: (await bulkActions.list(namespace, limit)).map(toBulkActionMessage) }
    }),
    listEvents: unaryHandler(logger, async (request) => {
      const page = await deps.eventReads.list(parseListEvents(request))
      return {
        events: page.events.map(({ event, deliveries }) => ({ event: toEventMessage(event), deliveries })),
        nextCursor: page.next ? encodeEventCursor(page.next) : '',
      }
    }),
    listWorkers: unaryHandler(logger, async (request) => ({
      workers: (await deps.workers.list(parseListWorkers(request))).map((worker) => ({
        workerId: worker.workerId,
        queues: worker.queues,
        jobs: worker.jobs,
        freeSlots: worker.freeSlots,
        sdk: worker.sdk,
        connectedAt: worker.connectedAt,
        lastSeenAt: worker.lastSeenAt,
        serverId: worker.serverId,
      })),
    })),
    getQueueStats: unaryHandler(logger, async (request) => {
      const { namespace, queue } = parseGetQueueStats(request)
      return { queues: (await deps.queueStats.summaries(namespace, queue)).map(toQueueStatsMessage) }
    }),
    getCaller: unaryHandler(logger, (_request, _signal, metadata) => {
      const caller = deps.principalOf(metadata)
      return Promise.resolve({
        keyId: caller.keyId,
        namespace: caller.namespace,
        scopes: [...caller.scopes].map(toScopeMessage),
        isAuthRequired: deps.isAuthRequired,
      })
    }),
  }
}
