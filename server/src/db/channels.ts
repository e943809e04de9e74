/** LISTEN/NOTIFY channels shared by the queries that notify and the listener. */

/** Payload: ReadyNotice as JSON. Sent at most once per statement that makes runs ready. */
export const readyChannel = 'stackshift_ready'

/** Payload: the run id. Sent by a trigger when a run that someone waits for finishes. */
export const runFinishedChannel = 'stackshift_run_finished'

/**
 * Payload: `<namespace>/<run id>` (namespaces cannot contain '/'). Sent when a
 * running run is cancelled, so the server holding its worker's stream tells
 * the worker, and only streams of that namespace hear of it.
 */
export const runCancelledChannel = 'stackshift_run_cancelled'

/** Payload: a key id. Sent when an API key is revoked, so every server forgets it at once. */
export const apiKeyRevokedChannel = 'stackshift_api_key_revoked'

/**
 * Payload: a namespace. Sent (by a trigger) when a job's or a queue's flow
 * policies change, so every server reloads them.
 */
export const flowPoliciesChannel = 'stackshift_flow_policies'

/** Which runs became ready. `queues: null` means any queue of the namespace. */
export interface ReadyNotice {
  /** Id of the server process that sent it, so it can skip its own notices. */
  origin: string
  namespace: string
  queues: string[] | null
}

// NOTIFY payloads are limited to 8000 bytes; beyond a safe size, wake every queue.
const maxPayloadLength = 7000

export function encodeReadyNotice(notice: ReadyNotice): string {
  const text = JSON.stringify(notice)
  return text.length <= maxPayloadLength ? text : JSON.stringify({ ...notice, queues: null })
}
