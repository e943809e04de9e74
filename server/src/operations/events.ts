import { randomUUID } from 'node:crypto'
import type { Knex } from 'knex'
import { eventResultJson } from '../core/event.js'
import type { EventRecord } from '../core/run.js'
import { type EventCursor, eventFind, eventInsert, eventList, eventListDeliveries, eventLockName } from '../db/queries/events.js'
import { waitResumeMatching } from '../db/queries/waits.js'
import type { ReadyAnnouncer } from './ready-announcer.js'

/** An event to send, validated. */
export interface NewEvent {
  namespace: string
  /** Undefined: the server chooses one. */
  id: string | undefined
  name: string
  dataJson: string
}

export interface SentEvent {
  event: EventRecord
  isDeduplicated: boolean
  resumedRuns: number
}

/**
 * SendEvent: stores the event and resumes the runs whose waits match it, in
 * one transaction under the event name's lock (see Suspensions). An id that
 * is already stored resumes nothing: each event is delivered once.
 */
export class EventSender {
  constructor(private readonly deps: { db: Knex; announcer: ReadyAnnouncer }) {}

  async send(request: NewEvent): Promise<SentEvent> {
    const { namespace } = request
    const id = request.id ?? randomUUID()
    const outcome = await this.deps.db.transaction(async (trx) => {
      await eventLockName(trx, { namespace, name: request.name })
      const stored = await eventInsert(trx, { namespace, id, name: request.name, dataJson: request.dataJson })
      if (!stored) return { event: (await eventFind(trx, { namespace, id }))!, isDeduplicated: true, queues: [] }
      const resumed = await waitResumeMatching(trx, { namespace, event: stored, resultJson: eventResultJson(stored) })
      const queues = [...new Set(resumed.map((run) => run.queue))]
      await this.deps.announcer.notifyOtherServers(trx, namespace, queues)
      return { event: stored, isDeduplicated: false, queues, resumedRuns: resumed.length }
    })
    this.deps.announcer.announceLocally(namespace, outcome.queues)
    return { event: outcome.event, isDeduplicated: outcome.isDeduplicated, resumedRuns: outcome.resumedRuns ?? 0 }
  }
}

/** An event with the runs it resumed (their wait steps). */
export interface ListedEvent {
  event: EventRecord
  deliveries: Array<{ runId: string; stepId: string }>
}

/** ListEvents: pages of a namespace's events, newest first, each with the runs it resumed. */
export class EventReads {
  constructor(private readonly deps: { db: Knex }) {}

  async list(params: {
    namespace: string
    name: string | undefined
    limit: number
    after: EventCursor | undefined
  }): Promise<{ events: ListedEvent[]; next: EventCursor | undefined }> {
    const page = await eventList(this.deps.db, params)
    const deliveries = await eventListDeliveries(this.deps.db, {
      namespace: params.namespace,
      events: page.map((event) => ({ id: event.id, name: event.name })),
    })
    return {
      events: page.map((listed) => ({
        event: { id: listed.id, name: listed.name, dataJson: listed.dataJson, receivedAt: listed.receivedAt },
        deliveries: deliveries.filter((delivery) => delivery.eventId === listed.id).map(({ runId, stepId }) => ({ runId, stepId })),
      })),
      next: page.length === params.limit ? page.at(-1)?.cursor : undefined,
    }
  }
}
