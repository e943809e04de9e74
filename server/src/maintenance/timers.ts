import type { Knex } from 'knex'
import { runNextDueInMs, runPromoteDue } from '../db/queries/timers.js'
import type { Logger } from '../logger.js'
import type { RunCanceller } from '../operations/cancellation.js'
import type { ReadyAnnouncer } from '../operations/ready-announcer.js'
import { PeriodicTask } from './periodic-task.js'

const promoteBatchSize = 1000

/**
 * Timers: makes delayed runs and retry backoffs ready when they are due, ends
 * sleeps and times out event waits. Sleeps until the next due run, as the
 * database reports it, but never longer than the poll interval, so runs
 * scheduled by other servers are also promoted on time if those servers are
 * gone. Every server runs this; SKIP LOCKED keeps them from promoting the
 * same run twice. A child run whose parent timed out waiting for it is
 * cancelled after the promotion commits, in its own transaction: a cancel
 * locks children before parents (operations/cancellation.ts), and the
 * promotion holds the parent. If the server stops in between, the child runs
 * on and its outcome is ignored: the parent's step has its outcome already.
 */
export class Timers {
  private readonly task: PeriodicTask

  constructor(
    private readonly deps: { db: Knex; logger: Logger; announcer: ReadyAnnouncer; canceller: RunCanceller; pollIntervalMs: number },
  ) {
    this.task = new PeriodicTask({ name: 'timers', logger: deps.logger, intervalMs: deps.pollIntervalMs, run: () => this.pass() })
  }

  start(): void {
    this.task.start()
  }

  stop(): Promise<void> {
    return this.task.stop()
  }

  /** A run was scheduled to become due in `ms`. */
  wakeWithin(ms: number): void {
    this.task.wakeWithin(ms)
  }

  private async pass(): Promise<number> {
    for (;;) {
      const { queues: promoted, abandonedChildRunIds } = await runPromoteDue(this.deps.db, { limit: promoteBatchSize })
      const byNamespace = new Map<string, string[]>()
      for (const group of promoted) byNamespace.set(group.namespace, [...(byNamespace.get(group.namespace) ?? []), group.queue])
      for (const [namespace, queues] of byNamespace) {
        await this.deps.announcer.notifyOtherServers(this.deps.db, namespace, queues)
        this.deps.announcer.announceLocally(namespace, queues)
      }
      await this.deps.canceller.cancelAbandoned(abandonedChildRunIds)
      if (promoted.reduce((sum, group) => sum + group.count, 0) < promoteBatchSize) break
    }
    const dueInMs = await runNextDueInMs(this.deps.db)
    return dueInMs === undefined ? this.deps.pollIntervalMs : Math.max(0, Math.min(Math.ceil(dueInMs), this.deps.pollIntervalMs))
  }
}
