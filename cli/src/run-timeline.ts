import type { AttemptInfo, Run, RunErrorInfo, StepInfo } from '@stackshift/sdk'
import { formatDurationMs } from './durations.js'
import { formatInstant, formatJsonBrief } from './format.js'
import { renderTable } from './table.js'

/*
 * A run's attempts and steps as a timeline: when each started (from the
 * run's creation), how long it took, a bar on one scale for the whole run,
 * and what sleeps and waits wait for.
 */

/** Columns of the bar. */
export const barWidth = 30
const workCell = '█'
const waitCell = '░'

interface Span {
  startMs: number | undefined
  endMs: number | undefined
  isWait: boolean
}

/** The attempt number of a step a replay copied from its source run. */
const copiedAttempt = 0
const noSpan: Span = { startMs: undefined, endMs: undefined, isWait: false }

interface Row {
  label: string
  span: Span
  note: string
}

/**
 * The timeline of `run` as of `now` (unfinished attempts and waits extend to
 * it): attempts and steps in the order they started. An attempt's span is its
 * last execution: one that a sleep or wait suspended ends there, and its
 * steps, recorded before the suspension, come before the attempt's row.
 * A replay's memo (steps of attempt 0, copied from the source run, which ran
 * them) comes first, without times: they did not happen in this run.
 */
export function renderTimeline(run: Run, now: Date): string {
  const originMs = (run.createdAt ?? earliestStart(run) ?? now).getTime()
  const offset = (date: Date | undefined) => (date === undefined ? undefined : date.getTime() - originMs)
  const nowMs = now.getTime() - originMs

  const attemptRows = run.attemptHistory.map((attempt): Row => ({
    label: `attempt ${attempt.attempt}`,
    span: {
      startMs: offset(attempt.startedAt),
      endMs: offset(attempt.finishedAt) ?? (attempt.outcome === 'running' ? nowMs : undefined),
      isWait: false,
    },
    note: describeAttempt(attempt),
  }))
  const stepRows = run.steps.map((step): Row => {
    const label = `${step.kind === 'run' ? 'step' : step.kind} ${step.id}`
    if (step.attempt === copiedAttempt) return { label, span: noSpan, note: `copied: ${describeStep(step)}` }
    return {
      label,
      span: {
        startMs: offset(step.startedAt),
        endMs: offset(step.finishedAt) ?? (step.status === 'waiting' ? nowMs : undefined),
        isWait: step.kind === 'sleep' || step.kind === 'wait',
      },
      note: describeStep(step),
    }
  })
  // A stable sort: an attempt comes before the steps that start with it, and steps keep their recorded order.
  const startOf = (row: Row) => row.span.startMs ?? Number.MIN_SAFE_INTEGER
  const rows = [...attemptRows, ...stepRows].sort((a, b) => startOf(a) - startOf(b))
  if (rows.length === 0) return `timeline: nothing yet (the run is ${run.status})`

  const ends = rows.flatMap((row) => [row.span.startMs ?? 0, row.span.endMs ?? 0])
  const scaleMs = Math.max(1, offset(run.finishedAt) ?? nowMs, ...ends)
  const scaleText = formatDurationMs(scaleMs)
  const table = renderTable(
    ['', 'START', 'TOOK', `0${scaleText.padStart(barWidth - 1)}`, ''],
    rows.map((row) => [
      row.label,
      row.span.startMs === undefined ? '' : `${row.span.startMs < 0 ? '' : '+'}${formatDurationMs(row.span.startMs)}`,
      row.span.startMs === undefined || row.span.endMs === undefined ? '' : formatDurationMs(row.span.endMs - row.span.startMs),
      renderBar(row.span, scaleMs),
      row.note,
    ]),
  )
  return `timeline (offsets from creation at ${formatInstant(run.createdAt)}; ${workCell} working, ${waitCell} waiting)\n${table}`
}

/** The span's cells on a bar of `barWidth` columns for `scaleMs`; at least one cell, so a short step still shows. */
export function renderBar(span: Span, scaleMs: number): string {
  if (span.startMs === undefined) return ' '.repeat(barWidth)
  const toColumn = (ms: number) => Math.min(barWidth, Math.max(0, (ms / scaleMs) * barWidth))
  const from = Math.min(barWidth - 1, Math.floor(toColumn(span.startMs)))
  const to = Math.max(from + 1, Math.ceil(toColumn(span.endMs ?? span.startMs)))
  return ' '.repeat(from) + (span.isWait ? waitCell : workCell).repeat(to - from) + ' '.repeat(barWidth - to)
}

function describeError(error: RunErrorInfo | undefined): string {
  return error ? `${error.name}: ${firstLine(error.message)}` : ''
}

function describeAttempt(attempt: AttemptInfo): string {
  const outcome = attempt.outcome.replace('_', ' ')
  return attempt.error ? `${outcome}: ${describeError(attempt.error)}` : outcome
}

function describeStep(step: StepInfo): string {
  if (step.status === 'failed') return `failed: ${describeError(step.error)}`
  const until = formatInstant(step.wakeAt)
  switch (step.kind) {
    case 'sleep':
      if (step.status === 'waiting') return `sleeping until ${until}`
      return step.wakeAt ? `slept until ${until}` : 'slept'
    case 'wait': {
      if (step.status === 'waiting') return `waiting for an event${step.wakeAt ? `, times out at ${until}` : ', no timeout'}`
      const event = step.result as { id?: unknown; name?: unknown } | null
      return event === null ? 'timed out without an event' : `got event ${String(event.name)} (${String(event.id)})`
    }
    case 'send':
      return `sent event ${String((step.result as { id?: unknown } | null)?.id)}`
    case 'invoke': {
      if (step.status === 'waiting') return `waiting for a child run, times out at ${until}`
      const outcome = step.result as { childRunId?: unknown; status?: unknown } | null
      return `child run ${String(outcome?.childRunId)} ${String(outcome?.status).replace('_', ' ')}`
    }
    case 'run':
    case 'state':
      return step.result === undefined ? 'completed' : `→ ${formatJsonBrief(step.result, 40)}`
  }
}

function earliestStart(run: Run): Date | undefined {
  const starts = [...run.attemptHistory, ...run.steps].flatMap((item) => (item.startedAt ? [item.startedAt] : []))
  return starts.sort((a, b) => a.getTime() - b.getTime())[0]
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0]!
}
