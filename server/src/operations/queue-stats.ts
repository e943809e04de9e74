import type { Knex } from 'knex'
import { type QueueDepth, type QueueMinute, runCountUnfinished, runListRecentMinutes } from '../db/queries/queue-depths.js'

/** One queue's runs by state now, and its last hour by minute. */
export interface QueueSummary {
  queue: string
  ready: number
  delayed: number
  waiting: number
  running: number
  minutes: QueueMinute[]
}

/** Statistics of queues, counted in the database, so every server reports the same. */
export class QueueStats {
  constructor(private readonly deps: { db: Knex }) {}

  /** Unfinished runs by namespace, queue and state (ready, delayed, waiting, running). */
  depths(): Promise<QueueDepth[]> {
    return runCountUnfinished(this.deps.db)
  }

  /** GetQueueStats: the queues of a namespace (or one) with unfinished runs or activity in the last hour, by name. */
  async summaries(namespace: string, queue: string | undefined): Promise<QueueSummary[]> {
    const [depths, minutes] = await Promise.all([this.depths(), runListRecentMinutes(this.deps.db, { namespace, queue })])
    const byQueue = new Map<string, QueueSummary>()
    const summaryOf = (name: string) => {
      let summary = byQueue.get(name)
      if (!summary) byQueue.set(name, (summary = { queue: name, ready: 0, delayed: 0, waiting: 0, running: 0, minutes: [] }))
      return summary
    }
    for (const depth of depths) {
      if (depth.namespace !== namespace || (queue !== undefined && depth.queue !== queue)) continue
      summaryOf(depth.queue)[depth.state] += depth.count
    }
    for (const minute of minutes) summaryOf(minute.queue).minutes.push(minute)
    return [...byQueue.values()].sort((a, b) => (a.queue < b.queue ? -1 : a.queue > b.queue ? 1 : 0))
  }
}
