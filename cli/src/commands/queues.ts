import type { QueueStats } from '@stackshift/sdk'
import type { Command } from '../command.js'
import { formatDurationMs } from '../durations.js'
import { renderTable } from '../table.js'

/* `stackshift queues`: each queue's runs by state now, and its last hour. */

/** A queue's last hour, summed from the server's per-minute points. */
interface HourSummary {
  started: number
  completed: number
  failed: number
  /** Mean time from ready to started over the hour's started runs; undefined when none started. */
  meanStartLatencyMs: number | undefined
}

/** The hour's totals, and its mean start latency. */
export function summarizeHour(stats: QueueStats): HourSummary {
  const sum = (pick: (minute: QueueStats['minutes'][number]) => number) => stats.minutes.reduce((total, minute) => total + pick(minute), 0)
  const started = sum((minute) => minute.started)
  // Each minute's mean weighted by the runs that started in it: the mean over the hour.
  const latencyTotalMs = sum((minute) => minute.meanStartLatencyMs * minute.started)
  return {
    started,
    completed: sum((minute) => minute.completed),
    failed: sum((minute) => minute.failed),
    meanStartLatencyMs: started === 0 ? undefined : latencyTotalMs / started,
  }
}

const queues: Command = {
  words: ['queues'],
  operands: [],
  summary: "each queue's runs by state, and its last hour: runs started, completed, failed; start latency",
  options: { queue: 'only this queue' },
  async run({ args, client }) {
    args.expectOperands([])
    const queue = args.string('queue')
    const stats = await client().getQueueStats(queue === undefined ? {} : { queue })
    const summaries = stats.map((entry) => ({ ...entry, lastHour: summarizeHour(entry) }))
    const rows = summaries.map(({ queue: name, ready, delayed, waiting, running, lastHour }) => [
      name,
      String(ready),
      String(delayed),
      String(waiting),
      String(running),
      String(lastHour.started),
      String(lastHour.completed),
      String(lastHour.failed),
      lastHour.meanStartLatencyMs === undefined ? '-' : formatDurationMs(lastHour.meanStartLatencyMs),
    ])
    const headers = ['QUEUE', 'READY', 'DELAYED', 'WAITING', 'RUNNING', 'STARTED/1H', 'COMPLETED/1H', 'FAILED/1H', 'START LATENCY']
    return { json: { queues: summaries }, text: renderTable(headers, rows) }
  },
}

export const queueCommands: readonly Command[] = [queues]
