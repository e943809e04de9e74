import { RunStatus, StepKind } from '@stackshift/proto/run'

/** How long, for people: `840 ms`, `4.2 s`, `3 min 12 s`, `2 h 5 min`, `3 d 4 h`. */
export function formatDuration(ms: number): string {
  if (ms < 0) ms = 0
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`
  const minutes = Math.floor(ms / 60_000)
  const seconds = Math.round((ms % 60_000) / 1000)
  if (minutes < 60) return seconds > 0 ? `${minutes} min ${seconds} s` : `${minutes} min`
  const hours = Math.floor(minutes / 60)
  if (hours < 48) return minutes % 60 > 0 ? `${hours} h ${minutes % 60} min` : `${hours} h`
  return hours % 24 > 0 ? `${Math.floor(hours / 24)} d ${hours % 24} h` : `${Math.floor(hours / 24)} d`
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hourCycle: 'h23',
})

const preciseTimeFormat = new Intl.DateTimeFormat(undefined, {
  year: 'numeric',
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  fractionalSecondDigits: 3,
  hourCycle: 'h23',
  timeZoneName: 'short',
})

/** An instant in the browser's time zone: `Dec 7, 09:56:50`; a dash when there is none. */
export function formatTime(date: Date | undefined): string {
  return date ? timeFormat.format(date) : '—'
}

/** An instant to the millisecond, with the year and time zone (for tooltips and detail). */
export function formatPreciseTime(date: Date | undefined): string {
  return date ? preciseTimeFormat.format(date) : '—'
}

/** `12 s ago`, `in 3 min`. */
export function formatRelative(date: Date, now = Date.now()): string {
  const delta = date.getTime() - now
  const text = formatDuration(Math.abs(delta)).replace(/ \d+ (s|min|h)$/, '')
  return delta < 0 ? `${text} ago` : `in ${text}`
}

/** A count with thousands separators. */
export function formatCount(value: number): string {
  return value.toLocaleString()
}

export const runStatusLabels: Record<RunStatus, string> = {
  [RunStatus.RUN_STATUS_UNSPECIFIED]: 'unknown',
  [RunStatus.RUN_STATUS_QUEUED]: 'queued',
  [RunStatus.RUN_STATUS_RUNNING]: 'running',
  [RunStatus.RUN_STATUS_WAITING]: 'waiting',
  [RunStatus.RUN_STATUS_COMPLETED]: 'completed',
  [RunStatus.RUN_STATUS_FAILED]: 'failed',
  [RunStatus.RUN_STATUS_CANCELLED]: 'cancelled',
  [RunStatus.UNRECOGNIZED]: 'unknown',
}

/** The statuses a filter can choose, in lifecycle order. */
export const filterableStatuses: RunStatus[] = [
  RunStatus.RUN_STATUS_QUEUED,
  RunStatus.RUN_STATUS_RUNNING,
  RunStatus.RUN_STATUS_WAITING,
  RunStatus.RUN_STATUS_COMPLETED,
  RunStatus.RUN_STATUS_FAILED,
  RunStatus.RUN_STATUS_CANCELLED,
]

/** Whether a run has finished (nothing will change it any more but an operator's new run). */
export function isFinished(status: RunStatus): boolean {
  return status === RunStatus.RUN_STATUS_COMPLETED || status === RunStatus.RUN_STATUS_FAILED || status === RunStatus.RUN_STATUS_CANCELLED
}

export const stepKindLabels: Record<StepKind, string> = {
  [StepKind.STEP_KIND_UNSPECIFIED]: 'step',
  [StepKind.STEP_KIND_RUN]: 'step',
  [StepKind.STEP_KIND_SLEEP]: 'sleep',
  [StepKind.STEP_KIND_WAIT]: 'wait',
  [StepKind.STEP_KIND_SEND]: 'send event',
  [StepKind.STEP_KIND_STATE]: 'state',
  [StepKind.STEP_KIND_INVOKE]: 'invoke',
  [StepKind.UNRECOGNIZED]: 'step',
}

/** JSON text indented for reading; text that is not JSON as it is. */
export function prettyJson(text: string | undefined): string {
  if (text === undefined || text === '') return ''
  try {
    return JSON.stringify(JSON.parse(text), null, 2)
  } catch {
    return text
  }
}

/** The trace id of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`), if the context has a valid one. */
export function traceIdOf(traceContext: Record<string, string>): string | undefined {
  const match = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(traceContext.traceparent ?? '')
  return match && match[1] !== '0'.repeat(32) ? match[1] : undefined
}

/** The first characters of a UUIDv7 are its creation time; the last ones tell runs apart in a list. */
export function shortId(id: string): string {
  return id.length > 12 ? `…${id.slice(-12)}` : id
}
