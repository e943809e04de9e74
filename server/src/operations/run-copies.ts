import type { Knex } from 'knex'
import { NotFoundError } from '../core/errors.js'
import { type JobPolicies, claimKeyPath, isClaimLimited } from '../core/flow-policy.js'
import type { RunRecord, StepRecord } from '../core/run.js'
import { isUuid, newRunId } from '../core/run-id.js'
import type { Executor } from '../db/database.js'
import { type RunCopy, runInsertCopy } from '../db/queries/run-copies.js'
import { runGet, stepListForRun } from '../db/queries/run-reads.js'
import type { ServerMetrics } from '../observability/metrics.js'
import type { FlowPolicies } from './flow-policies.js'
import type { ReadyAnnouncer } from './ready-announcer.js'

/** A copy planned for one source run: what to insert, or why the source is skipped. */
export type PlannedCopy = { copy: RunCopy; queue: string; job: string } | { skipReason: string }

/**
 * Reruns and replays: new runs made from a run, for operators. The source is
 * never touched. A replay is a fork: the new run's memo holds the source's
 * steps completed before the chosen step, in the order the source recorded
 * them (the order GetRun lists them), so its handler returns their results
 * at once and executes from that step on. Bulk actions plan and insert
 * copies inside their own transactions; RerunRun and ReplayRun in one each.
 */
export class RunCopier {
  constructor(private readonly deps: { db: Knex; announcer: ReadyAnnouncer; metrics: ServerMetrics; policies: FlowPolicies }) {}

  /** RerunRun: a new run of the source's job and queue, with its payload or `payload`. */
  rerun(params: { namespace: string; runId: string; payload: { json: string; bytes: number } | undefined }): Promise<RunRecord> {
    return this.copyOne(params.namespace, params.runId, (source) => planRerun(params.namespace, source, params.payload))
  }

  /** ReplayRun: a fork of the source that executes from `fromStepId` (empty: from the start). */
  replay(params: { namespace: string; runId: string; fromStepId: string }): Promise<RunRecord> {
    return this.copyOne(params.namespace, params.runId, async (source, db) => {
      const planned = planReplay(params.namespace, source, await stepListForRun(db, { runId: source.id }), params.fromStepId)
      if ('skipReason' in planned) throw new NotFoundError(planned.skipReason)
      return planned
    })
  }

  /**
   * Inserts planned copies in `db` (a transaction of the caller's); call
   * `announce` with them once it commits. A copy of a job or queue under flow
   * control is keyed like an enqueued run (the source's key value, or the one
   * at the policies' path in its payload), so the flow claim takes it.
   */
  async insert(db: Executor, copies: ReadonlyArray<{ copy: RunCopy; queue: string; job: string }>): Promise<void> {
    for (const { copy, queue, job } of copies) {
      const { policies } = this.deps
      const flow = policies.isFlowControlled(copy.namespace, queue, job)
        ? { keyPath: claimKeyPathOf(policies.jobPolicies(copy.namespace, job)) }
        : undefined
      await runInsertCopy(db, copy, this.deps.announcer.encodeNotice(copy.namespace, [queue]), flow)
    }
  }

  /** Wakes this server's workers for committed copies, and counts them as enqueued. */
  announce(copies: ReadonlyArray<{ copy: RunCopy; queue: string; job: string }>): void {
    for (const { copy, queue, job } of copies) {
      this.deps.announcer.announceLocally(copy.namespace, [queue])
      this.deps.metrics.recordEnqueued(copy.namespace, [{ queue, job }])
    }
  }

  private async copyOne(
    namespace: string,
    runId: string,
    plan: (source: RunRecord, db: Executor) => Promise<PlannedCopy> | PlannedCopy,
  ): Promise<RunRecord> {
    const notFound = () => new NotFoundError(`run ${runId} not found in namespace ${namespace}`)
    if (!isUuid(runId)) throw notFound()
    const { planned, copied } = await this.deps.db.transaction(async (trx) => {
      const source = await runGet(trx, { namespace, runId })
      if (!source) throw notFound()
      const planned = await plan(source, trx)
      if ('skipReason' in planned) throw new NotFoundError(planned.skipReason)
      await this.insert(trx, [planned])
      const copied = await runGet(trx, { namespace, runId: planned.copy.id })
      if (!copied) throw notFound()
      return { planned, copied }
    })
    this.announce([planned])
    return copied
  }
}

/** A rerun of `source`. */
export function planRerun(namespace: string, source: RunRecord, payload: { json: string; bytes: number } | undefined): PlannedCopy {
  return {
    copy: { namespace, sourceRunId: source.id, id: newRunId(), origin: 'rerun', payload, replay: undefined },
    queue: source.queue,
    job: source.job,
  }
}

/**
 * A replay of `source` from `fromStepId`, given the source's steps in the
 * order they were recorded; skipped when the source has no such step.
 */
export function planReplay(namespace: string, source: RunRecord, steps: readonly StepRecord[], fromStepId: string): PlannedCopy {
  const index = fromStepId === '' ? 0 : steps.findIndex((step) => step.id === fromStepId)
  if (index < 0) return { skipReason: `run ${source.id} has no step "${fromStepId}" to replay from` }
  const keptStepIds = steps
    .slice(0, index)
    .filter((step) => step.status === 'completed')
    .map((step) => step.id)
  return {
    copy: { namespace, sourceRunId: source.id, id: newRunId(), origin: 'replay', payload: undefined, replay: { fromStepId, keptStepIds } },
    queue: source.queue,
    job: source.job,
  }
}

/** The payload path a copy's key value is read at: none for a run under a queue limit only. */
function claimKeyPathOf(policies: JobPolicies | undefined): string | undefined {
  return policies && isClaimLimited(policies) ? claimKeyPath(policies) : undefined
}
