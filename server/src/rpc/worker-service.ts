import { type Metadata, type ServerDuplexStream, status } from '@grpc/grpc-js'
import type { ServerConfig } from '../config.js'
import type { Principal } from '../core/access.js'
import type { ClaimedRun } from '../core/run.js'
import type { Dispatcher, TaskConsumer } from '../dispatch/dispatcher.js'
import type { Logger } from '../logger.js'
import type { RunClaims } from '../operations/claim.js'
import type { FlowPolicies } from '../operations/flow-policies.js'
import type { LeaseWrites, RevokedLease } from '../operations/lease-writes.js'
import type { Suspensions } from '../operations/waits.js'
import type { ConnectRequest, ConnectResponse, WorkerServiceServer } from '@stackshift/proto/worker-service'
import { toFailRunResponse, toRevokedLease, toSuspendRunResponse, toTaskMessage } from './convert.js'
import { unaryHandler } from './error-map.js'
import {
  parseClaimTask,
  parseCompleteRun,
  parseCompleteStep,
  parseFailRun,
  parseHeartbeat,
  parseReleaseRun,
  parseSuspendRun,
} from './worker-requests.js'
import { WorkerStream, generateWorkerId } from './worker-stream.js'

/** WorkerService plus what the server needs to shut it down and observe it. */
export interface WorkerServiceHandle {
  service: WorkerServiceServer
  /** Workers connected by stream. */
  streams: ReadonlySet<WorkerStream>
  /** Ends every stream (workers reconnect elsewhere) and answers pending long-polls. */
  shutdown(): void
  /** Tells the connected workers of a namespace to stop working on runs. */
  revoke(namespace: string, leases: readonly RevokedLease[]): void
}

export function createWorkerService(deps: {
  config: ServerConfig
  logger: Logger
  claims: RunClaims
  dispatcher: Dispatcher
  leaseWrites: LeaseWrites
  suspensions: Suspensions
  policies: FlowPolicies
  /** Who a unary call comes from: its writes are fenced to the principal's namespace. */
  principalOf: (metadata: Metadata) => Principal
}): WorkerServiceHandle {
  const { config, logger, leaseWrites } = deps
  const streams = new Set<WorkerStream>()
  const pendingClaims = new Set<() => void>()

  const service: WorkerServiceServer = {
    connect: (call: ServerDuplexStream<ConnectRequest, ConnectResponse>) => {
      const stream = new WorkerStream(call, { ...deps, onClosed: (closed) => streams.delete(closed) })
      streams.add(stream)
    },
    claimTask: unaryHandler(logger, async (request, signal) => {
      const claim = parseClaimTask(request, config, generateWorkerId)
      if (claim.waitMs === 0) {
        const { runs } = await deps.claims.claim({ ...claim, limit: claim.maxTasks })
        const taken: ClaimedRun[] = []
        const take = (deliverable: ClaimedRun[]) => {
          // A caller that went away while its runs were being claimed will not run them.
          if (signal.aborted) return false
          taken.push(...deliverable)
          return true
        }
        await deps.claims.handOver(runs, take, claim.leaseMs)
        return { tasks: taken.map((run) => toTaskMessage(run, claim.leaseMs)) }
      }
      // Long-poll: subscribe like a worker with `maxTasks` free slots, until
      // runs arrive, the wait ends, the client goes away, or the server stops.
      const runs = await new Promise<ClaimedRun[]>((resolve) => {
        let isDone = false
        const consumer: TaskConsumer = {
          ...claim,
          // The first delivery answers the call: one claim takes all it asked for.
          claimMax: claim.maxTasks,
          freeSlots: () => (isDone ? 0 : claim.maxTasks),
          deliver: (claimed) => {
            if (isDone) return false
            finish(claimed)
            return true
          },
        }
        const subscription = deps.dispatcher.subscribe(consumer)
        const timer = setTimeout(() => finish([]), claim.waitMs)
        const onAbort = () => finish([])
        signal.addEventListener('abort', onAbort)
        const onShutdown = () => finish([])
        pendingClaims.add(onShutdown)
        function finish(claimed: ClaimedRun[]) {
          if (isDone) return
          isDone = true
          clearTimeout(timer)
          signal.removeEventListener('abort', onAbort)
          pendingClaims.delete(onShutdown)
          subscription.close()
          resolve(claimed)
        }
      })
      return { tasks: runs.map((run) => toTaskMessage(run, claim.leaseMs)) }
    }),
    heartbeat: unaryHandler(logger, async (request, _signal, metadata) => {
      const { namespace } = deps.principalOf(metadata)
      const { leases, leaseMs } = parseHeartbeat(request, config.leaseMs)
      const revoked = await leaseWrites.heartbeat(
        leases.map((lease) => ({ ...lease, namespace })),
        leaseMs,
      )
      return { revoked: revoked.map(toRevokedLease) }
    }),
    completeStep: unaryHandler(logger, async (request, _signal, metadata) => {
      await leaseWrites.completeStep({ ...parseCompleteStep(request, config), namespace: deps.principalOf(metadata).namespace })
      return {}
    }),
    completeRun: unaryHandler(logger, async (request, _signal, metadata) => {
      await leaseWrites.completeRun({ ...parseCompleteRun(request, config), namespace: deps.principalOf(metadata).namespace })
      return {}
    }),
    failRun: unaryHandler(logger, async (request, _signal, metadata) =>
      toFailRunResponse(await leaseWrites.failRun({ ...parseFailRun(request), namespace: deps.principalOf(metadata).namespace })),
    ),
    releaseRun: unaryHandler(logger, async (request, _signal, metadata) => {
      await leaseWrites.releaseRun({ ...parseReleaseRun(request), namespace: deps.principalOf(metadata).namespace })
      return {}
    }),
    suspendRun: unaryHandler(logger, async (request, _signal, metadata) =>
      toSuspendRunResponse(
        await deps.suspensions.suspend({ ...parseSuspendRun(request, config), namespace: deps.principalOf(metadata).namespace }),
      ),
    ),
  }

  return {
    service,
    streams,
    shutdown() {
      for (const finish of [...pendingClaims]) finish()
      for (const stream of [...streams]) stream.terminate({ code: status.UNAVAILABLE, message: 'server is shutting down; reconnect' })
    },
    revoke(namespace, leases) {
      for (const stream of streams) if (stream.namespace === namespace) stream.revoke(leases)
    },
  }
}
