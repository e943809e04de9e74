import type { Knex } from 'knex'
import { eventResultJson } from '../core/event.js'
import type { Fenced, Suspension, SuspensionOutcome } from '../core/run.js'
import { eventFindMatch, eventLockName } from '../db/queries/events.js'
import { waitCompleteStepNow, waitLockLease, waitSuspend } from '../db/queries/waits.js'
import { failpoint } from '../failpoints.js'
import type { ChildRuns } from './child-runs.js'
import { explainLostLease } from './lease-writes.js'
import type { ReadyAnnouncer } from './ready-announcer.js'

/**
 * Sleeps and event waits. A suspension is one transaction on the locked run:
 * either the step completes at once (the sleep is over, or a matching event
 * was received since the run reached the wait, or within the wait's lookback
 * before that) and the worker carries on,
 * or the run becomes WAITING and its lease ends. An event wait holds the
 * event name's lock while it looks for an event and registers itself, so a
 * concurrent SendEvent either committed before (and is found) or runs after
 * (and finds the registration). A suspension sent again (its answer was
 * lost) after it completed the step at once gets the same answer. Child
 * runs (step.invoke) suspend through ChildRuns.
 */
export class Suspensions {
  constructor(private readonly deps: { db: Knex; announcer: ReadyAnnouncer; childRuns: ChildRuns }) {}

  async suspend(suspension: Fenced<Suspension>): Promise<SuspensionOutcome> {
    const { runId, stepId, wait } = suspension
    if (wait.kind === 'invoke') {
      await this.deps.childRuns.invoke({ ...suspension, children: wait.children })
      return { suspended: true }
    }
    const outcome = await this.deps.db.transaction(async (trx): Promise<SuspensionOutcome & { wakeAt?: Date }> => {
      const run = await waitLockLease(trx, suspension)
      if (!run) throw await explainLostLease(trx, suspension)
      // A repeat of a suspension that completed the step at once: the same answer again.
      if (run.completedStep) return { suspended: false, event: run.completedStep.event }
      if (wait.kind === 'sleep') {
        if (wait.wakeAt.getTime() <= run.now.getTime()) {
          await waitCompleteStepNow(trx, { runId, stepId, kind: 'sleep', attempt: run.attempt, resultJson: 'null' })
          return { suspended: false, event: undefined }
        }
        const wakeAt = await waitSuspend(trx, {
          runId,
          stepId,
          kind: 'sleep',
          attempt: run.attempt,
          wake: { at: wait.wakeAt },
          event: undefined,
        })
        return { suspended: true, wakeAt }
      }
      await eventLockName(trx, { namespace: run.namespace, name: wait.name })
      const event = await eventFindMatch(trx, {
        namespace: run.namespace,
        name: wait.name,
        matchJson: wait.matchJson,
        since: new Date(run.waitSince.getTime() - wait.lookbackMs),
        runId,
      })
      if (event) {
        await waitCompleteStepNow(trx, { runId, stepId, kind: 'wait', attempt: run.attempt, resultJson: eventResultJson(event) })
        return { suspended: false, event }
      }
      const wakeAt = await waitSuspend(trx, {
        runId,
        stepId,
        kind: 'wait',
        attempt: run.attempt,
        wake: { inMs: wait.timeoutMs },
        event: { namespace: run.namespace, name: wait.name, matchJson: wait.matchJson },
      })
      return { suspended: true, wakeAt }
    })
    failpoint('suspend-run:after-commit')
    if (outcome.wakeAt) this.deps.announcer.announceScheduled(outcome.wakeAt.getTime() - Date.now())
    return outcome.suspended ? { suspended: true } : { suspended: false, event: outcome.event }
  }
}
