import type { ServerDuplexStream } from '@grpc/grpc-js'
import type { EnqueueStreamRequest, EnqueueStreamResponse, RunServiceServer } from '@stackshift/proto/run-service'
import type { ServerConfig } from '../config.js'
import type { Logger } from '../logger.js'
import type { RunCanceller } from '../operations/cancellation.js'
import type { RunEnqueuer } from '../operations/enqueue.js'
import type { EventSender } from '../operations/events.js'
import type { RunReads } from '../operations/run-reads.js'
import { runStatusFromProto, toEventMessage, toRunMessage } from './convert.js'
import { EnqueueStream } from './enqueue-stream.js'
import { unaryHandler } from './error-map.js'
import {
  parseCancelRun,
  parseEnqueue,
  parseEnqueueBatch,
  parseListRuns,
  parseRunRef,
  parseSendEvent,
  parseWaitForRun,
} from './run-requests.js'

/** RunService plus what the server needs to shut it down. */
export interface RunServiceHandle {
  service: RunServiceServer
  /** Ends every EnqueueStream once its received requests are answered. */
  shutdown(): void
}

/** RunService: validate, call the operation, convert. No SQL and no status codes here. */
export function createRunService(deps: {
  config: ServerConfig
  logger: Logger
  enqueuer: RunEnqueuer
  reads: RunReads
  events: EventSender
  canceller: RunCanceller
}): RunServiceHandle {
  const { config, logger, enqueuer, reads, events, canceller } = deps
  const enqueueStreams = new Set<EnqueueStream>()
  let isShuttingDown = false
  const service: RunServiceServer = {
    enqueue: unaryHandler(logger, async (request) => {
      const { namespace, run } = parseEnqueue(request, config)
      const outcome = await enqueuer.enqueue(namespace, run)
      return { runId: outcome.runId, deduplicated: outcome.isDeduplicated }
    }),
    enqueueStream: (call: ServerDuplexStream<EnqueueStreamRequest, EnqueueStreamResponse>) => {
      const stream = new EnqueueStream(call, { config, logger, enqueuer, onClosed: (closed) => enqueueStreams.delete(closed) })
      enqueueStreams.add(stream)
      if (isShuttingDown) stream.end()
    },
    enqueueBatch: unaryHandler(logger, async (request) => {
      const { namespace, runs } = parseEnqueueBatch(request, config)
      const outcomes = await enqueuer.enqueueBatch(namespace, runs)
      return { results: outcomes.map((outcome) => ({ runId: outcome.runId, deduplicated: outcome.isDeduplicated })) }
    }),
    getRun: unaryHandler(logger, async (request) => {
      const { namespace, runId } = parseRunRef(request)
      return { run: toRunMessage(await reads.getRun(namespace, runId)) }
    }),
    waitForRun: unaryHandler(logger, async (request, signal) => {
      const { namespace, runId, timeoutMs } = parseWaitForRun(request)
      const { run, isFinished } = await reads.waitForRun(namespace, runId, timeoutMs, signal)
      return { run: toRunMessage(run), finished: isFinished }
    }),
    sendEvent: unaryHandler(logger, async (request) => {
      const sent = await events.send(parseSendEvent(request, config))
      return { event: toEventMessage(sent.event), deduplicated: sent.isDeduplicated, resumedRuns: sent.resumedRuns }
    }),
    cancelRun: unaryHandler(logger, async (request) => {
      const run = await canceller.cancel(parseCancelRun(request))
      return { run: toRunMessage(run) }
    }),
    listRuns: unaryHandler(logger, async (request) => {
      const { runs, nextCursor } = await reads.listRuns(parseListRuns(request, runStatusFromProto(request.status)))
      return { runs: runs.map(toRunMessage), nextCursor: nextCursor ?? '' }
    }),
  }
  return {
    service,
    shutdown() {
      isShuttingDown = true
      for (const stream of [...enqueueStreams]) stream.end()
    },
  }
}
