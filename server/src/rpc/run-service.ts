import type { ServerConfig } from '../config.js'
import type { Logger } from '../logger.js'
import type { RunEnqueuer } from '../operations/enqueue.js'
import type { RunReads } from '../operations/run-reads.js'
import type { RunServiceServer } from '../gen/stackshift/jobs/v1/run_service.js'
import { toRunMessage } from './convert.js'
import { unaryHandler } from './error-map.js'
import { parseEnqueue, parseEnqueueBatch, parseRunRef, parseWaitForRun } from './requests.js'

/** RunService: validate, call the operation, convert. No SQL and no status codes here. */
export function createRunService(deps: { config: ServerConfig; logger: Logger; enqueuer: RunEnqueuer; reads: RunReads }): RunServiceServer {
  const { config, logger, enqueuer, reads } = deps
  return {
    enqueue: unaryHandler(logger, async (request) => {
      const { namespace, run } = parseEnqueue(request, config)
      const outcome = await enqueuer.enqueue(namespace, run)
      return { runId: outcome.runId, deduplicated: outcome.isDeduplicated }
    }),
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
  }
}
