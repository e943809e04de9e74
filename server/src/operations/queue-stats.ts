import type { Knex } from 'knex'
import { type QueueDepth, runCountUnfinished } from '../db/queries/queue-depths.js'

/** Statistics of queues, counted in the database, so every server reports the same. */
export class QueueStats {
  constructor(private readonly deps: { db: Knex }) {}

  /** Unfinished runs by namespace, queue and state (ready, delayed, waiting, running). */
  depths(): Promise<QueueDepth[]> {
    return runCountUnfinished(this.deps.db)
  }
}
