import type pg from 'pg'
import type { FaultRecord } from './faults.js'
import { type ChaosResult, counterKey, counterTotal, effectSteps, jobName } from './job.js'
import { ledgerTable } from './ledger.js'
import type { HandlerError, LoggedError, WorkerIncarnation } from './processes.js'
import type { FaultKind } from './schedule.js'
import type { EnqueueRecord, WaitRecord } from './workload.js'

/** One line of the verdict. */
export interface Check {
  name: string
  /** What was found. */
  value: string
  /** What must be found for the check to pass. */
  expected: string
  isPassed: boolean
  /** Examples of what failed, for the JSON report. */
  details?: unknown
}

/** How late a WaitForRun may return after its run finished. */
export const waitForRunLateMs = 5_000
/** How soon health must be SERVING again after PostgreSQL is back. */
export const servingAgainMs = 10_000
/** How soon the workers of a restarted server must be connected to it again, from its listening. */
export const workersBackMs = 10_000

/** What the checks read besides the tables. */
export interface CheckInput {
  records: readonly EnqueueRecord[]
  waits: readonly WaitRecord[]
  workloadFailures: ReadonlyMap<string, number>
  faults: readonly FaultRecord[]
  incarnations: readonly WorkerIncarnation[]
  serverErrors: readonly LoggedError[]
  /** Errors the job's handlers met (other than suspensions). */
  handlerErrors: readonly HandlerError[]
  /** Whether every acknowledged run finished before the drain timed out. */
  isDrained: boolean
  drainMs: number
  /** Fault kinds that must each have been injected at least once. */
  requiredKinds: readonly FaultKind[]
}

interface RunRow {
  id: string
  status: string
  attempt: number
  key: string
  result: ChaosResult | null
  error: { name?: string; message?: string } | null
  finished_at: Date | null
}

interface StepRow {
  run_id: string
  step_id: string
  kind: string
  status: string
  attempt: number
  finished_at: Date | null
  result: { nonce?: string } | null
}

interface AttemptRow {
  run_id: string
  attempt: number
  outcome: string
  started_at: Date | null
  finished_at: Date
  worker_id: string | null
  error: { name?: string; message?: string } | null
}

interface LedgerRow {
  run_id: string
  step_id: string
  attempt: number
  worker_id: string
  nonce: string
  recorded_at: Date
}

/** StackShift's own tables and the ledger, as they are once the run drained. */
interface Tables {
  runs: Map<string, RunRow>
  steps: Map<string, StepRow>
  attempts: AttemptRow[]
  ledger: LedgerRow[]
  counters: Map<string, unknown>
}

const stepKey = (runId: string, stepId: string) => `${runId}/${stepId}`

async function readTables(db: pg.Client): Promise<Tables> {
  const runs = await db.query<RunRow>(
    `SELECT id::text, status::text, attempt, payload ->> 'key' AS key, result, error, finished_at FROM stackshift.runs WHERE job = $1`,
    [jobName],
  )
  const steps = await db.query<StepRow>(
    `SELECT s.run_id::text, s.step_id, s.kind::text, s.status::text, s.attempt, s.finished_at, s.result
     FROM stackshift.steps s JOIN stackshift.runs r ON r.id = s.run_id WHERE r.job = $1`,
    [jobName],
  )
  const attempts = await db.query<AttemptRow>(
    `SELECT a.run_id::text, a.attempt, a.outcome::text, a.started_at, a.finished_at, a.worker_id, a.error
     FROM stackshift.attempts a JOIN stackshift.runs r ON r.id = a.run_id WHERE r.job = $1`,
    [jobName],
  )
  const ledger = await db.query<LedgerRow>(`SELECT run_id::text, step_id, attempt, worker_id, nonce::text, recorded_at FROM ${ledgerTable}`)
  const counters = await db.query<{ key: string; value: unknown }>(
    `SELECT key, value FROM stackshift.state WHERE namespace = 'default' AND key LIKE 'chaos:counter:%'`,
  )
  return {
    runs: new Map(runs.rows.map((row) => [row.id, row])),
    steps: new Map(steps.rows.map((row) => [stepKey(row.run_id, row.step_id), row])),
    attempts: attempts.rows,
    ledger: ledger.rows,
    counters: new Map(counters.rows.map((row) => [row.key, row.value])),
  }
}

/** At most this many examples of a failure go into the report. */
const exampleCount = 10

function check(name: string, value: string, expected: string, isPassed: boolean, details?: unknown[]): Check {
  return { name, value, expected, isPassed, ...(details && details.length > 0 && { details: details.slice(0, exampleCount) }) }
}

const overlaps = (from: number, to: number, window: { from: number; to: number }) => from <= window.to && to >= window.from

/** Runs every check against the tables (read on `db`) and what the driver and the fault runner recorded. */
export async function runChecks(db: pg.Client, input: CheckInput): Promise<Check[]> {
  const tables = await readTables(db)
  const checks: Check[] = []
  const acknowledged = input.records.filter((record) => record.runId !== undefined)
  const completed = [...tables.runs.values()].filter((run) => run.status === 'completed')
  const attemptsOf = new Map<string, AttemptRow>(tables.attempts.map((a) => [`${a.run_id}#${a.attempt}`, a]))
  const ledgerByNonce = new Map(tables.ledger.map((row) => [row.nonce, row]))

  // 1. Every acknowledged enqueue ends completed.
  const lost = acknowledged.filter((record) => tables.runs.get(record.runId!)?.status !== 'completed')
  checks.push(
    check(
      'acknowledged enqueues that did not complete (lost)',
      `${lost.length} of ${acknowledged.length} (${input.records.length - acknowledged.length} never acknowledged)`,
      '0',
      lost.length === 0,
      lost.map((record) => ({ key: record.key, runId: record.runId, status: tables.runs.get(record.runId!)?.status ?? 'missing' })),
    ),
  )
  checks.push(
    check(
      'runs finished before the drain timeout',
      input.isDrained ? `all, ${(input.drainMs / 1000).toFixed(1)} s after the faults` : 'no',
      'all',
      input.isDrained,
    ),
  )

  // 2. One run per idempotency key: every acknowledgement for a key named the same run, and the table holds one.
  const runsByKey = new Map<string, string[]>()
  for (const run of tables.runs.values()) runsByKey.set(run.key, [...(runsByKey.get(run.key) ?? []), run.id])
  const duplicated = [
    ...input.records
      .filter((record) => record.ackedRunIds.size > 1)
      .map((record) => ({ key: record.key, acknowledged: [...record.ackedRunIds] })),
    ...[...runsByKey].filter(([, ids]) => ids.length > 1).map(([key, ids]) => ({ key, stored: ids })),
  ]
  const repeats = input.records.filter((record) => record.calls > 1).length
  checks.push(
    check(
      'keys with more than one run',
      `${duplicated.length} (${repeats} keys enqueued more than once)`,
      '0',
      duplicated.length === 0,
      duplicated,
    ),
  )

  // 3. No run completed twice: the completing attempt did not also end otherwise, and no attempt came after it.
  const completedTwice = completed.filter(
    (run) =>
      tables.attempts.some((a) => a.run_id === run.id && a.attempt >= run.attempt) ||
      effectSteps.some((stepId) => (tables.steps.get(stepKey(run.id, stepId))?.attempt ?? 0) > run.attempt),
  )
  checks.push(
    check(
      'runs completed twice (an attempt ended after the completing one)',
      `${completedTwice.length} of ${completed.length} completed`,
      '0',
      completedTwice.length === 0,
      completedTwice.map((run) => run.id),
    ),
  )

  // 4. No step recorded twice: the result each run returned carries the nonces stored in the memo, and each stored
  // nonce is the side effect of the attempt the memo names.
  const rewritten: unknown[] = []
  const missingEffects: unknown[] = []
  for (const run of completed) {
    for (const stepId of effectSteps) {
      const stored = tables.steps.get(stepKey(run.id, stepId))
      const nonce = stored?.result?.nonce
      if (nonce === undefined || run.result?.nonces[stepId] !== nonce) {
        rewritten.push({ runId: run.id, stepId, stored: nonce, returned: run.result?.nonces[stepId] })
        continue
      }
      const effect = ledgerByNonce.get(nonce)
      if (!effect) missingEffects.push({ runId: run.id, stepId, nonce })
      else if (effect.attempt !== stored!.attempt)
        rewritten.push({ runId: run.id, stepId, storedAttempt: stored!.attempt, effectAttempt: effect.attempt })
    }
  }
  checks.push(
    check(
      'steps recorded twice (memo differs from what the run used)',
      `${rewritten.length} of ${completed.length * effectSteps.length} steps`,
      '0',
      rewritten.length === 0,
      rewritten,
    ),
  )

  // 5. Side effects: at least once; more than once only where an attempt died inside the step.
  const repeated: Array<{ runId: string; stepId: string; attempt: number; isExplained: boolean; outcome: string | undefined }> = []
  const completedIds = new Set(completed.map((run) => run.id))
  for (const effect of tables.ledger) {
    if (!completedIds.has(effect.run_id)) continue
    const stored = tables.steps.get(stepKey(effect.run_id, effect.step_id))
    if (stored?.result?.nonce === effect.nonce) continue
    const ended = attemptsOf.get(`${effect.run_id}#${effect.attempt}`)
    repeated.push({
      runId: effect.run_id,
      stepId: effect.step_id,
      attempt: effect.attempt,
      isExplained: ended !== undefined && ended.attempt !== stored?.attempt,
      outcome: ended?.outcome,
    })
  }
  const unexplained = repeated.filter((effect) => !effect.isExplained)
  checks.push(
    check('side effects missing for a stored step', String(missingEffects.length), '0', missingEffects.length === 0, missingEffects),
  )
  checks.push(
    check(
      'side effects repeated where no attempt died in the step',
      `${unexplained.length} (${repeated.length} repeated, each by an attempt that died: ${describeCounts(repeated.filter((e) => e.isExplained).map((e) => e.outcome ?? '?'))})`,
      '0',
      unexplained.length === 0,
      unexplained,
    ),
  )

  // 6. Late writes refused: no step stored after the attempt that stored it had ended, and a worker continued
  // after its lease ran out was refused (LeaseLostError in its handlers) rather than left to carry on.
  const lateSteps = [...tables.steps.values()].filter((step) => {
    const ended = attemptsOf.get(`${step.run_id}#${step.attempt}`)
    return ended !== undefined && step.status === 'completed' && step.finished_at !== null && step.finished_at > ended.finished_at
  })
  const stopped = input.incarnations.filter((incarnation) => incarnation.continuedAt !== undefined)
  // How the SDK reports a write refused for its lease: from a step (or the run's end), and from a State Store call.
  const refusals = ['LeaseLostError', 'FailedPreconditionError']
  const refusedAfterStop = stopped.map((incarnation) => ({
    workerId: incarnation.workerId,
    refused: input.handlerErrors.filter(
      (error) => error.workerId === incarnation.workerId && error.at >= incarnation.continuedAt! && refusals.includes(error.error),
    ).length,
  }))
  const unrefused = refusedAfterStop.filter((stop) => stop.refused === 0)
  // What stopped workers did once continued, in attempts whose lease had expired meanwhile.
  const staleEffects = tables.ledger.filter((effect) => {
    const incarnation = stopped.find((candidate) => candidate.workerId === effect.worker_id)
    const ended = attemptsOf.get(`${effect.run_id}#${effect.attempt}`)
    return incarnation !== undefined && effect.recorded_at.getTime() >= incarnation.continuedAt! && ended?.outcome === 'lease_expired'
  })
  checks.push(
    check(
      'writes accepted from an attempt after it ended',
      `${lateSteps.length}; workers continued past their lease: ${refusedAfterStop.map((stop) => `${stop.workerId} refused ${stop.refused}×`).join(', ') || 'none'}` +
        ` (${staleEffects.length} side effects of expired attempts after SIGCONT)`,
      '0; every stopped worker refused',
      lateSteps.length === 0 && unrefused.length === 0,
      [
        ...lateSteps.map((step) => ({ runId: step.run_id, stepId: step.step_id, attempt: step.attempt })),
        ...unrefused.map((stop) => ({ workerId: stop.workerId, refused: 0 })),
      ],
    ),
  )

  // 7. Counters: each run's counter equals its increments, exactly once each.
  const wrongCounters = completed.filter(
    (run) => Number(tables.counters.get(counterKey(run.key))) !== counterTotal || run.result?.counter !== counterTotal,
  )
  checks.push(
    check(
      `state counters not equal to the increments (${counterTotal} per run)`,
      `${wrongCounters.length} of ${completed.length}`,
      '0',
      wrongCounters.length === 0,
      wrongCounters.map((run) => ({ key: run.key, stored: tables.counters.get(counterKey(run.key)), returned: run.result?.counter })),
    ),
  )

  // 8. Every completed run got its event.
  const withoutEvent = completed.filter((run) => run.result?.eventId !== `approve:${run.key}`)
  checks.push(
    check(
      'completed runs whose wait did not get its event',
      String(withoutEvent.length),
      '0',
      withoutEvent.length === 0,
      withoutEvent.map((run) => run.id),
    ),
  )

  // 9. No run failed.
  const failed = [...tables.runs.values()].filter((run) => run.status === 'failed' || run.status === 'cancelled')
  checks.push(
    check(
      'runs that ended failed or cancelled',
      failed.length === 0 ? '0' : `${failed.length}: ${describeCounts(failed.map((run) => run.error?.message ?? run.status))}`,
      '0',
      failed.length === 0,
      failed.map((run) => ({ runId: run.id, status: run.status, error: run.error })),
    ),
  )

  // 10. Attempts: those a killed or stopped process explains, and the rest, which an outage must not have cost.
  checks.push(attemptCheck(tables, input))

  // 11. WaitForRun returns within 5 s of the run finishing.
  checks.push(...waitChecks(tables, input))

  // 12. Health.
  checks.push(...healthChecks(input.faults))

  // 13. Nothing answered INTERNAL.
  const internalLogged = input.serverErrors.filter((error) => error.msg === 'internal error')
  const internalAnswers = [...input.workloadFailures].filter(([name]) => name.endsWith(' INTERNAL')).reduce((sum, [, n]) => sum + n, 0)
  const internalAttempts = tables.attempts.filter((a) => a.error?.name === 'InternalError')
  const internal = internalLogged.length + internalAnswers + internalAttempts.length
  checks.push(
    check(
      'INTERNAL errors (server log, driver calls, failed attempts)',
      `${internal} (${internalLogged.length} logged, ${internalAnswers} answered to the driver, ${internalAttempts.length} in attempts)`,
      '0',
      internal === 0,
      [
        ...internalLogged.map((error) => `server ${error.server}: ${error.err ?? error.msg}`),
        ...internalAttempts.map((a) => a.error?.message),
      ],
    ),
  )

  // 14. Workers reconnect to a restarted server promptly, however often it restarted.
  const restarts = input.faults.filter((record) => record.workersBackAfterMs !== undefined)
  const lateReturns = restarts.filter((record) => record.workersBackAfterMs === null || record.workersBackAfterMs! > workersBackMs)
  const slowestReturn = Math.max(0, ...restarts.map((record) => record.workersBackAfterMs ?? Number.POSITIVE_INFINITY))
  checks.push(
    check(
      `server restarts whose workers took more than ${workersBackMs / 1000} s to reconnect`,
      `${lateReturns.length} of ${restarts.length} (slowest ${slowestReturn === Number.POSITIVE_INFINITY ? 'never' : `${slowestReturn} ms`})`,
      '0',
      lateReturns.length === 0,
      lateReturns.map((record) => ({ fault: record.fault, workersBackAfterMs: record.workersBackAfterMs })),
    ),
  )

  // 15. Worker kills and stops struck in the middle of a step.
  const workerFaults = input.faults.filter((record) => record.fault.kind === 'worker-kill' || record.fault.kind === 'worker-stop')
  const notMidStep = workerFaults.filter((record) => (record.stepsInFlight ?? 0) === 0)
  checks.push(
    check(
      'worker kills and stops that struck no step in flight',
      `${notMidStep.length} of ${workerFaults.length} (steps in flight at the signal: ${workerFaults.map((record) => record.stepsInFlight ?? 0).join(', ')})`,
      '0',
      notMidStep.length === 0,
      notMidStep.map((record) => ({ fault: record.fault, workerId: record.workerId })),
    ),
  )

  // 16. Faults: every planned one injected, every failpoint reached, every required kind present.
  checks.push(faultCheck(input))
  return checks
}

/**
 * Attempts that did not complete their run (stackshift.attempts). Explained:
 * the worker process that held the lease was killed or stopped during the
 * attempt, or the attempt never reached a worker (no side effect) and a
 * server was killed just after it was claimed. Every other one is an attempt
 * some fault cost although the worker kept running: an outage of PostgreSQL
 * shorter than the lease, or a crowded pool, must cost none.
 */
function attemptCheck(tables: Tables, input: CheckInput): Check {
  const incarnations = new Map(input.incarnations.map((incarnation) => [incarnation.workerId, incarnation]))
  // A suspended run resumes as the same attempt number, maybe on another worker: an attempt's own effects are
  // those of its worker since it started.
  const hasEffects = (attempt: AttemptRow, from: number) =>
    tables.ledger.some(
      (effect) =>
        effect.run_id === attempt.run_id &&
        effect.attempt === attempt.attempt &&
        effect.worker_id === attempt.worker_id &&
        effect.recorded_at.getTime() >= from,
    )
  const serverFaults = input.faults.filter((record) => record.fault.kind === 'server-kill' || record.fault.kind === 'server-failpoint')
  const windows = (kinds: readonly FaultKind[]) =>
    input.faults
      .filter((record) => kinds.includes(record.fault.kind))
      .map((record) => ({ kind: record.fault.kind, ...(record.outage ?? { from: record.startedAt, to: record.endedAt }) }))
  const costWindows = windows(['pg-restart', 'pg-outage', 'pool-exhaustion', 'listener-kill'])
  let byWorkerFault = 0
  let byServerFault = 0
  const costly: Array<{ runId: string; attempt: number; outcome: string; workerId: string | null; during: string; error: unknown }> = []
  for (const attempt of tables.attempts) {
    const from = (attempt.started_at ?? attempt.finished_at).getTime()
    const to = attempt.finished_at.getTime()
    const incarnation = attempt.worker_id === null ? undefined : incarnations.get(attempt.worker_id)
    // Killed during the attempt, or stopped at any time during it: a server keeps handing runs to a stopped
    // worker whose socket still takes them, and their leases expire too.
    const isKilled = incarnation?.killedAt !== undefined && incarnation.killedAt >= from - 1000 && incarnation.killedAt <= to
    const isStopped =
      incarnation?.stoppedAt !== undefined &&
      incarnation.stoppedAt <= to &&
      (incarnation.continuedAt ?? Number.POSITIVE_INFINITY) >= from - 1000
    const struck = isKilled || isStopped
    if (attempt.outcome === 'lease_expired' && struck) {
      byWorkerFault++
      continue
    }
    const isUndelivered =
      attempt.outcome === 'lease_expired' &&
      !hasEffects(attempt, from) &&
      serverFaults.some((record) => overlaps(from - 1000, from + 10_000, { from: record.startedAt, to: record.endedAt }))
    if (isUndelivered) {
      byServerFault++
      continue
    }
    const during = costWindows.filter((window) => overlaps(from, to, window)).map((window) => window.kind)
    costly.push({
      runId: attempt.run_id,
      attempt: attempt.attempt,
      outcome: attempt.outcome,
      workerId: attempt.worker_id,
      during: during.length > 0 ? [...new Set(during)].join('+') : 'no fault window',
      error: attempt.error?.message,
    })
  }
  const handlerErrors = describeCounts(input.handlerErrors.map((error) => `${error.call} ${error.error}`))
  return check(
    'attempts lost without their worker being killed or stopped',
    `${costly.length}${costly.length > 0 ? ` (${describeCounts(costly.map((a) => `${a.outcome} during ${a.during}`))})` : ''}; ` +
      `${byWorkerFault} by worker kills and stops, ${byServerFault} claimed as a server died; errors in handlers: ${handlerErrors}`,
    '0',
    costly.length === 0,
    costly,
  )
}

function waitChecks(tables: Tables, input: CheckInput): Check[] {
  const listenerKills = input.faults.filter((record) => record.fault.kind === 'listener-kill' || record.outage !== undefined)
  const measured: Array<{ runId: string; lateMs: number; isAfterListenerLoss: boolean }> = []
  const unanswered: string[] = []
  for (const wait of input.waits) {
    const finishedAt = tables.runs.get(wait.runId)?.finished_at?.getTime()
    if (finishedAt === undefined) continue
    if (wait.returnedAt === undefined || wait.callStartedAt === undefined) {
      unanswered.push(wait.runId)
      continue
    }
    // A call made after the run finished must answer at once; one in progress when it finished, within the bound.
    const lateMs = wait.returnedAt - Math.max(finishedAt, wait.callStartedAt)
    const isAfterListenerLoss = listenerKills.some((record) => finishedAt >= record.startedAt && finishedAt <= record.endedAt + 15_000)
    measured.push({ runId: wait.runId, lateMs, isAfterListenerLoss })
  }
  const late = measured.filter((wait) => wait.lateMs > waitForRunLateMs)
  const afterLoss = measured.filter((wait) => wait.isAfterListenerLoss)
  const max = (waits: typeof measured) => (waits.length === 0 ? 0 : Math.max(...waits.map((wait) => wait.lateMs)))
  return [
    check(
      `WaitForRun answers later than ${waitForRunLateMs / 1000} s after the run finished`,
      `${late.length + unanswered.length} of ${measured.length + unanswered.length} (slowest ${max(measured)} ms; ` +
        `${afterLoss.length} finished within 15 s of a LISTEN connection lost, slowest ${max(afterLoss)} ms)`,
      '0, and some after a LISTEN loss',
      late.length + unanswered.length === 0 && afterLoss.length > 0,
      [...late, ...unanswered.map((runId) => ({ runId, lateMs: 'never answered' }))],
    ),
  ]
}

function healthChecks(faults: readonly FaultRecord[]): Check[] {
  const recoveries = faults.filter((record) => record.servingAfterMs !== undefined)
  const slow = recoveries.filter((record) => record.servingAfterMs!.some((ms) => ms === null || ms > servingAgainMs))
  const slowest = Math.max(0, ...recoveries.flatMap((record) => record.servingAfterMs!.map((ms) => ms ?? Number.POSITIVE_INFINITY)))
  const outages = faults.filter((record) => record.sawNotServing !== undefined)
  const unnoticed = outages.filter((record) => record.sawNotServing!.includes(false))
  return [
    check(
      `health SERVING more than ${servingAgainMs / 1000} s after PostgreSQL is back`,
      `${slow.length} of ${recoveries.length} restarts (slowest server ${slowest === Number.POSITIVE_INFINITY ? 'never' : `${slowest} ms`})`,
      '0',
      slow.length === 0,
      slow.map((record) => ({ fault: record.fault.kind, servingAfterMs: record.servingAfterMs })),
    ),
    check(
      'outages a server did not report as NOT_SERVING',
      `${unnoticed.length} of ${outages.length}`,
      '0',
      unnoticed.length === 0,
      unnoticed.map((record) => record.sawNotServing),
    ),
  ]
}

function faultCheck(input: CheckInput): Check {
  const failedFaults = input.faults.filter((record) => record.error !== undefined)
  const unreached = input.faults.filter((record) => record.isReached === false)
  const counts = new Map<FaultKind, number>()
  for (const record of input.faults) counts.set(record.fault.kind, (counts.get(record.fault.kind) ?? 0) + 1)
  const missing = input.requiredKinds.filter((kind) => !counts.has(kind))
  const problems = [
    ...failedFaults.map((record) => `${record.fault.kind}: ${record.error}`),
    ...unreached.map((record) => `${record.fault.kind}: failpoint not reached`),
    ...missing.map((kind) => `${kind}: never injected`),
  ]
  return check(
    'faults injected',
    [...counts].map(([kind, n]) => `${kind} ${n}`).join(', ') + (problems.length > 0 ? `; problems: ${problems.length}` : ''),
    'every planned fault, every kind',
    problems.length === 0,
    problems,
  )
}

/** "a ×3, b ×1" */
function describeCounts(values: readonly string[]): string {
  const counts = new Map<string, number>()
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1)
  return [...counts].map(([value, n]) => `${value} ×${n}`).join(', ') || 'none'
}
