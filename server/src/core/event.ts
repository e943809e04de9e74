import type { EventRecord } from './run.js'

/**
 * A wait step's result when an event resumed it: what step.waitForEvent
 * returns, memoized as JSON. Built as text, so the event's data goes through
 * as stored without being parsed.
 */
export function eventResultJson(event: EventRecord): string {
  return `{"id":${JSON.stringify(event.id)},"name":${JSON.stringify(event.name)},"data":${event.dataJson},"receivedAt":"${event.receivedAt.toISOString()}"}`
}
