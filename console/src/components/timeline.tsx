import { AttemptOutcome, type Run, type Step, StepKind, StepStatus } from '@stackshift/proto/run'
import type { ReactNode } from 'react'
import { formatDuration, formatPreciseTime, formatTime, isFinished, stepKindLabels } from '../format.js'

/** One bar of the waterfall. */
interface Bar {
  key: string
  depth: 0 | 1
  label: ReactNode
  /** What the bar stands for, after its label: `1.2 s`, `until 10:04:05`. */
  detail: string
  startMs: number
  endMs: number
  /** Still going: the bar runs to now. */
  isOpen: boolean
  tone: 'completed' | 'failed' | 'running' | 'waiting' | 'cancelled' | 'memo' | 'suspended'
  step: Step | undefined
  /** False for a heading row without a bar. */
  hasBar?: boolean
}

const attemptTones: Record<AttemptOutcome, Bar['tone']> = {
  [AttemptOutcome.ATTEMPT_OUTCOME_UNSPECIFIED]: 'running',
  [AttemptOutcome.ATTEMPT_OUTCOME_RUNNING]: 'running',
  [AttemptOutcome.ATTEMPT_OUTCOME_COMPLETED]: 'completed',
  [AttemptOutcome.ATTEMPT_OUTCOME_FAILED]: 'failed',
  [AttemptOutcome.ATTEMPT_OUTCOME_LEASE_EXPIRED]: 'failed',
  [AttemptOutcome.ATTEMPT_OUTCOME_CANCELLED]: 'cancelled',
  [AttemptOutcome.UNRECOGNIZED]: 'running',
}

const attemptWords: Record<AttemptOutcome, string> = {
  [AttemptOutcome.ATTEMPT_OUTCOME_UNSPECIFIED]: '',
  [AttemptOutcome.ATTEMPT_OUTCOME_RUNNING]: 'running',
  [AttemptOutcome.ATTEMPT_OUTCOME_COMPLETED]: 'completed',
  [AttemptOutcome.ATTEMPT_OUTCOME_FAILED]: 'failed',
  [AttemptOutcome.ATTEMPT_OUTCOME_LEASE_EXPIRED]: 'lease expired',
  [AttemptOutcome.ATTEMPT_OUTCOME_CANCELLED]: 'cancelled',
  [AttemptOutcome.UNRECOGNIZED]: '',
}

/** What a sleep, an event wait or an invoke is waiting for, or waited for. */
function waitDetail(step: Step): string {
  const wake = step.wakeAt ? formatTime(step.wakeAt) : undefined
  if (step.status === StepStatus.STEP_STATUS_FAILED) return `ended: ${step.error?.message || 'failed'}`
  if (step.kind === StepKind.STEP_KIND_INVOKE) {
    if (step.status === StepStatus.STEP_STATUS_WAITING) return `waiting for its child run${wake ? ` · times out ${wake}` : ''}`
    const outcome = childOutcomeOf(step)
    return outcome ? `child run ${outcome.status.replace('_', ' ')}` : 'child run finished'
  }
  if (step.kind === StepKind.STEP_KIND_SLEEP) {
    return step.status === StepStatus.STEP_STATUS_WAITING ? `sleeping until ${wake ?? '?'}` : `slept until ${wake ?? '?'}`
  }
  if (step.status === StepStatus.STEP_STATUS_WAITING) {
    const event = step.waitEventName || 'an event'
    const match = step.waitMatchJson && step.waitMatchJson !== '{}' ? ` matching ${step.waitMatchJson}` : ''
    return `waiting for ${event}${match}${wake ? ` · times out ${wake}` : ''}`
  }
  const event = receivedEventName(step)
  return event === undefined ? 'timed out: no event came' : `received event ${event}`
}

/** The name of the event a finished wait received (its result is the event), if it received one. */
export function receivedEventName(step: Step): string | undefined {
  try {
    const event: unknown = JSON.parse(step.resultJson ?? 'null')
    return typeof event === 'object' && event !== null && 'name' in event && typeof event.name === 'string' ? event.name : undefined
  } catch {
    return undefined
  }
}

/** An invoke step's outcome: its result is {childRunId, status, result or error}. */
export function childOutcomeOf(step: Step): { childRunId: string; status: string } | undefined {
  try {
    const outcome: unknown = JSON.parse(step.resultJson ?? 'null')
    return typeof outcome === 'object' &&
      outcome !== null &&
      'childRunId' in outcome &&
      typeof outcome.childRunId === 'string' &&
      'status' in outcome &&
      typeof outcome.status === 'string'
      ? { childRunId: outcome.childRunId, status: outcome.status }
      : undefined
  } catch {
    return undefined
  }
}

function stepTone(step: Step, isMemo: boolean): Bar['tone'] {
  if (step.status === StepStatus.STEP_STATUS_FAILED) return 'failed'
  // An invoke step completes with its child's outcome, which may be a failure.
  if (step.kind === StepKind.STEP_KIND_INVOKE && step.status === StepStatus.STEP_STATUS_COMPLETED) {
    const outcome = childOutcomeOf(step)
    if (outcome && outcome.status !== 'completed') return 'failed'
  }
  if (step.status === StepStatus.STEP_STATUS_WAITING) return 'waiting'
  return isMemo ? 'memo' : 'completed'
}

const isWaitStep = (step: Step) =>
  step.kind === StepKind.STEP_KIND_SLEEP || step.kind === StepKind.STEP_KIND_WAIT || step.kind === StepKind.STEP_KIND_INVOKE

/**
 * The run's attempts, each followed by the steps it recorded, on one time
 * axis from the run's creation: a bar per attempt and per step, to scale.
 * Sleeps, waits and invokes run to when they end (or time out). Steps that came with
 * the run's memo (attempt 0: a replay's copies of its source's steps) come
 * first. An attempt that suspended the run (a sleep or a wait) is not in the
 * attempt history; its bar spans its steps.
 */
function buildBars(run: Run, nowMs: number): Bar[] {
  const bars: Bar[] = []
  const createdMs = run.createdAt!.getTime()
  const stepBar = (step: Step, isMemo: boolean): Bar => {
    const startMs = (step.startedAt ?? step.finishedAt ?? run.createdAt!).getTime()
    const isOpen = step.status === StepStatus.STEP_STATUS_WAITING
    const endMs = isOpen ? (step.wakeAt?.getTime() ?? nowMs) : (step.finishedAt?.getTime() ?? startMs)
    const kind = stepKindLabels[step.kind]
    return {
      key: `step-${step.id}-${step.attempt}`,
      depth: 1,
      label: (
        <>
          <span className={`kind kind-${kind.replace(' ', '-')}`}>{kind}</span>
          <span className="mono" title={step.id}>
            {step.id}
          </span>
        </>
      ),
      detail: isWaitStep(step)
        ? waitDetail(step)
        : step.status === StepStatus.STEP_STATUS_FAILED
          ? `failed after ${formatDuration(endMs - startMs)}`
          : isMemo
            ? `memoized · ${formatDuration(endMs - startMs)}`
            : formatDuration(endMs - startMs),
      startMs,
      endMs,
      isOpen,
      tone: stepTone(step, isMemo),
      step,
    }
  }
  // A replay's memo: steps that ran in the source run, before this run was created. Their bars
  // stand at this run's start, with the time they took there.
  const memo = run.steps.filter((step) => step.attempt === 0)
  if (memo.length > 0) {
    bars.push({
      key: 'memo',
      depth: 0,
      label: <span className="strong">Memo</span>,
      detail: 'kept from the source run, not run again',
      startMs: createdMs,
      endMs: createdMs,
      isOpen: false,
      tone: 'memo',
      step: undefined,
      hasBar: false,
    })
  }
  for (const step of memo) {
    const bar = stepBar(step, true)
    bars.push({ ...bar, startMs: createdMs, endMs: createdMs + Math.min(bar.endMs - bar.startMs, 0) })
  }
  const numbers = [...new Set([...run.attemptHistory.map((attempt) => attempt.attempt), ...run.steps.map((step) => step.attempt)])]
    .filter((number) => number > 0)
    .sort((a, b) => a - b)
  for (const number of numbers) {
    const steps = run.steps.filter((step) => step.attempt === number)
    const stepBars = steps.map((step) => stepBar(step, false))
    const attempt = run.attemptHistory.find((candidate) => candidate.attempt === number)
    if (attempt) {
      const startMs = attempt.startedAt?.getTime() ?? createdMs
      const isOpen = !attempt.finishedAt
      const endMs = attempt.finishedAt?.getTime() ?? nowMs
      bars.push({
        key: `attempt-${number}`,
        depth: 0,
        label: <span className="strong">Attempt {number}</span>,
        detail: `${attemptWords[attempt.outcome]}${isOpen ? ' · ' : ' after '}${formatDuration(endMs - startMs)}`,
        startMs,
        endMs,
        isOpen,
        tone: attemptTones[attempt.outcome],
        step: undefined,
      })
    } else if (stepBars.length > 0) {
      const startMs = Math.min(...stepBars.map((bar) => bar.startMs))
      // Up to where the attempt handed the run back: the start of its sleep or wait.
      const suspendedAt = steps.filter(isWaitStep).map((step) => (step.startedAt ?? step.finishedAt)!.getTime())
      const endMs = suspendedAt.length > 0 ? Math.max(...suspendedAt) : Math.max(...stepBars.map((bar) => bar.endMs))
      bars.push({
        key: `attempt-${number}`,
        depth: 0,
        label: <span className="strong">Attempt {number}</span>,
        detail: `${suspendedAt.length > 0 ? 'suspended after' : 'ran for'} ${formatDuration(endMs - startMs)}`,
        startMs,
        endMs,
        isOpen: false,
        tone: 'suspended',
        step: undefined,
      })
    }
    bars.push(...stepBars)
  }
  return bars
}

/** The waterfall of a run's attempts and steps, with a Replay button on each step when the caller may act. */
/** How many attempts the timeline shows: those recorded, and those that suspended the run. */
export function attemptCount(run: Run): number {
  return new Set([...run.attemptHistory.map((attempt) => attempt.attempt), ...run.steps.map((step) => step.attempt)].filter((n) => n > 0))
    .size
}

export function Timeline(props: { run: Run; nowMs: number; onReplay?: ((step: Step) => void) | undefined }) {
  const { run, nowMs } = props
  const bars = buildBars(run, nowMs)
  const originMs = run.createdAt!.getTime()
  const lastMs = Math.max(
    originMs + 1,
    isFinished(run.status) && run.finishedAt ? run.finishedAt.getTime() : nowMs,
    ...bars.map((bar) => bar.endMs),
  )
  const spanMs = lastMs - originMs
  const at = (ms: number) => `${(((ms - originMs) / spanMs) * 100).toFixed(3)}%`
  const ticks = [0, 0.25, 0.5, 0.75, 1]
  if (bars.length === 0) {
    const waitsFor = run.flowWait ? 'its flow-control limit (see Held back above)' : 'a worker'
    return <div className="muted">No attempt yet: the run is waiting for {waitsFor}.</div>
  }
  return (
    <div className="timeline" role="table" aria-label="Timeline">
      <div className="timeline-axis" role="row">
        <div className="timeline-label" role="columnheader">
          from {formatPreciseTime(run.createdAt)}
        </div>
        <div className="timeline-track" role="columnheader">
          {ticks.map((tick) => (
            <span key={tick} className="tick" style={{ left: `${tick * 100}%` }}>
              {tick === 0 ? 'created' : `+${formatDuration(spanMs * tick)}`}
            </span>
          ))}
        </div>
      </div>
      {bars.map((bar) => {
        const placement = detailPlacement((bar.startMs - originMs) / spanMs, (bar.endMs - originMs) / spanMs)
        return (
          <div key={bar.key} className={`timeline-row depth-${bar.depth}`} role="row" data-step-id={bar.step?.id}>
            <div className="timeline-label" role="cell">
              {bar.label}
            </div>
            <div className="timeline-track" role="cell">
              {ticks.slice(1, -1).map((tick) => (
                <span key={tick} className="gridline" style={{ left: `${tick * 100}%` }} />
              ))}
              {bar.hasBar !== false && (
                <div
                  className={`bar bar-${bar.tone}${bar.isOpen ? ' bar-open' : ''}`}
                  style={{ left: at(bar.startMs), width: `max(3px, calc(${at(bar.endMs)} - ${at(bar.startMs)}))` }}
                  title={`${formatPreciseTime(new Date(bar.startMs))} → ${bar.isOpen ? 'now' : formatPreciseTime(new Date(bar.endMs))}`}
                />
              )}
              <span className={`bar-detail${placement.isInside ? ' bar-detail-inside' : ''}`} style={placement.style}>
                {bar.detail}
              </span>
            </div>
            <div className="timeline-actions" role="cell">
              {bar.step && props.onReplay && (
                <button
                  className="small-button"
                  onClick={() => props.onReplay!(bar.step!)}
                  title={`Replay the run from step ${bar.step.id}`}
                >
                  Replay from here
                </button>
              )}
            </div>
          </div>
        )
      })}
    </div>
  )
}

/**
 * Where a bar's label goes: after the bar when there is room to its right,
 * else before it when there is room to its left, else over the bar's start
 * (a bar across the whole axis, such as a long sleep).
 */
function detailPlacement(startFraction: number, endFraction: number): { isInside: boolean; style: { left?: string; right?: string } } {
  if (endFraction <= 0.7) return { isInside: false, style: { left: `calc(${(endFraction * 100).toFixed(3)}% + 6px)` } }
  if (startFraction >= 0.3) return { isInside: false, style: { right: `calc(${(100 - startFraction * 100).toFixed(3)}% + 6px)` } }
  return { isInside: true, style: { left: `calc(${(startFraction * 100).toFixed(3)}% + 14px)` } }
}
