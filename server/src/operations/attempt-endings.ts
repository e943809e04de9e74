import { type RetryBackoff, decideAfterFailure } from '../core/retry-policy.js'
import type { ErrorInfo } from '../core/run.js'
import type { Executor } from '../db/database.js'
import { type AttemptEnd, type LockedAttempt, attemptRecordMany, runEndAttempts } from '../db/queries/attempt-endings.js'
import { stepRecordFailures } from '../db/queries/step-memo.js'
import { type Logger, runLogFields } from '../logger.js'
import type { ServerMetrics } from '../observability/metrics.js'
import type { ReadyAnnouncer } from './ready-announcer.js'

/** Why an attempt ended without completing, and what the worker asked for. */
export interface AttemptFailure {
  run: LockedAttempt
  outcome: 'failed' | 'lease_expired'
  error: ErrorInfo
  isRetriable: boolean
  requestedDelayMs: number | undefined
  failedStep: { stepId: string; durationMs: number } | undefined
}

/** What became of a run whose attempt failed. */
export interface FailureResult {
  status: 'queued' | 'failed'
  /** When the next attempt is due; undefined when the run failed for good. */
  retryAt: Date | undefined
}

/**
 * Ends failed attempts of runs locked by `trx`: decides retry or failure,
 * updates the runs, records the attempts and failed steps, and queues the
 * NOTIFY for runs retried at once. Used for handler failures and for expired
 * leases alike, so both follow one retry policy. Call `afterCommit` with the
 * result once the transaction has committed: it wakes workers and timers, and
 * records the runs that failed for good and the failed steps' durations.
 */
export async function endFailedAttempts(
  trx: Executor,
  deps: { backoff: RetryBackoff; announcer: ReadyAnnouncer; metrics: ServerMetrics; logger: Logger },
  failures: readonly AttemptFailure[],
): Promise<{ results: Map<string, FailureResult>; afterCommit: () => void }> {
  if (failures.length === 0) return { results: new Map(), afterCommit: () => {} }
  const ends: AttemptEnd[] = failures.map((failure) => {
    const decision = decideAfterFailure({
      attempt: failure.run.attempt,
      maxAttempts: failure.run.maxAttempts,
      isRetriable: failure.isRetriable,
      requestedDelayMs: failure.requestedDelayMs,
      backoff: deps.backoff,
    })
    const isReportedByWorker = failure.outcome === 'failed'
    if (decision.kind === 'fail') return { runId: failure.run.id, status: 'failed', delayMs: 0, error: failure.error, isReportedByWorker }
    const status = decision.delayMs > 0 ? 'scheduled' : 'queued'
    return { runId: failure.run.id, status, delayMs: decision.delayMs, error: failure.error, isReportedByWorker }
  })
  const retryAts = await runEndAttempts(trx, { ends })
  await attemptRecordMany(trx, {
    attempts: failures.map((f) => ({
      runId: f.run.id,
      attempt: f.run.attempt,
      outcome: f.outcome,
      startedAt: f.run.startedAt,
      workerId: f.run.workerId,
      error: f.error,
    })),
  })
  const stepFailures = failures.flatMap((f) =>
    f.failedStep
      ? [{ runId: f.run.id, stepId: f.failedStep.stepId, attempt: f.run.attempt, durationMs: f.failedStep.durationMs, error: f.error }]
      : [],
  )
  if (stepFailures.length > 0) await stepRecordFailures(trx, { failures: stepFailures })

  const readyNow = new Map<string, Set<string>>()
  let soonestDelayMs: number | undefined
  const results = new Map<string, FailureResult>()
  const failedRuns: LockedAttempt[] = []
  ends.forEach((end, index) => {
    const run = failures[index]!.run
    if (end.status === 'failed') {
      results.set(end.runId, { status: 'failed', retryAt: undefined })
      failedRuns.push(run)
      return
    }
    results.set(end.runId, { status: 'queued', retryAt: retryAts.get(end.runId) })
    if (end.status === 'queued') readyNow.set(run.namespace, (readyNow.get(run.namespace) ?? new Set()).add(run.queue))
    else soonestDelayMs = Math.min(soonestDelayMs ?? end.delayMs, end.delayMs)
  })
  for (const [namespace, queues] of readyNow) await deps.announcer.notifyOtherServers(trx, namespace, [...queues])
  return {
    results,
    afterCommit: () => {
      for (const [namespace, queues] of readyNow) deps.announcer.announceLocally(namespace, [...queues])
      if (soonestDelayMs !== undefined) deps.announcer.announceScheduled(soonestDelayMs)
      deps.metrics.recordFailed(failedRuns)
      failures.forEach(({ run, outcome, error }) => {
        const { status, retryAt } = results.get(run.id)!
        const fields = { ...runLogFields(run), outcome, error: error.message }
        if (status === 'failed') deps.logger.warn(fields, 'run failed')
        else deps.logger.info({ ...fields, retryAt }, 'attempt ended without completing; the run will be retried')
      })
      deps.metrics.recordStepDurations(
        'failed',
        failures.flatMap((f) =>
          f.failedStep ? [{ namespace: f.run.namespace, job: f.run.job, durationMs: f.failedStep.durationMs }] : [],
        ),
      )
    },
  }
}
