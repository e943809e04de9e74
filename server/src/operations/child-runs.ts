import type { Knex } from 'knex'
import { newRunId } from '../core/run-id.js'
import type { ChildRunRequest, Fenced, LeaseRef } from '../core/run.js'
import { readyChannel } from '../db/channels.js'
import { childParentLockLease, childParentSuspend, childRunInsertMany, childStepsWait } from '../db/queries/child-runs.js'
import { failpoint } from '../failpoints.js'
import type { ServerMetrics } from '../observability/metrics.js'
import type { FlowPolicies } from './flow-policies.js'
import { explainLostLease } from './lease-writes.js'
import type { ReadyAnnouncer } from './ready-announcer.js'

/**
 * step.invoke: a parent starts child runs and waits for them. One
 * transaction on the locked, leased parent inserts the children that do not
 * exist yet (one per parent and step, whatever is sent again), records the
 * invoke steps as waiting, and ends the parent's lease: it waits until the
 * last child finishes (the trigger function resume_parent queues it) or the
 * earliest timeout passes (the timers), holding no slot meanwhile. When no
 * step waits (every child named had finished), the parent is queued at once,
 * and its next claim replays the outcomes: the answer is always "suspended",
 * so a worker never needs the outcomes in the answer.
 */
export class ChildRuns {
  constructor(private readonly deps: { db: Knex; announcer: ReadyAnnouncer; metrics: ServerMetrics; policies: FlowPolicies }) {}

  async invoke(params: Fenced<LeaseRef> & { children: readonly ChildRunRequest[] }): Promise<void> {
    const { runId } = params
    const outcome = await this.deps.db.transaction(async (trx) => {
      const parent = await childParentLockLease(trx, params)
      if (!parent) throw await explainLostLease(trx, params)
      const inserted = await childRunInsertMany(trx, {
        parentRunId: runId,
        namespace: parent.namespace,
        traceContext: parent.traceContext,
        // A child of a job under flow control gets its key value as an enqueued run does
        // (debounce is for enqueues: each invoke starts its own child).
        children: params.children.map((child) => ({
          ...child,
          id: newRunId(),
          concurrencyKey: this.deps.policies.placementOf(parent.namespace, { ...child, concurrencyKey: undefined }).concurrencyKey,
        })),
        readyNotice: (queues) => this.deps.announcer.encodeNotice(parent.namespace, queues),
        readyChannel,
      })
      await childStepsWait(trx, {
        parentRunId: runId,
        attempt: parent.attempt,
        steps: params.children.map((child) => ({ stepId: child.stepId, timeoutMs: child.timeoutMs })),
      })
      const suspended = await childParentSuspend(trx, { parentRunId: runId })
      if (suspended.status === 'queued') await this.deps.announcer.notifyOtherServers(trx, parent.namespace, [suspended.queue])
      return { namespace: parent.namespace, inserted, suspended }
    })
    failpoint('suspend-run:after-commit')
    const { namespace, inserted, suspended } = outcome
    this.deps.metrics.recordEnqueued(namespace, inserted)
    const childQueues = [...new Set(inserted.map((child) => child.queue))]
    this.deps.announcer.announceLocally(namespace, suspended.status === 'queued' ? [...childQueues, suspended.queue] : childQueues)
    if (suspended.status === 'waiting') this.deps.announcer.announceScheduled(suspended.availableAt.getTime() - Date.now())
  }
}
