import { encodeReadyNotice } from '../db/channels.js'
import type { Executor } from '../db/database.js'
import { readyNotify } from '../db/queries/ready-notices.js'

/**
 * Tells whoever waits for work that runs became ready: idle workers connected
 * to this server at once (no round trip), workers on other servers through a
 * NOTIFY that carries this server's id (so it can ignore its own), and the
 * timer service when a run was scheduled for later.
 */
export class ReadyAnnouncer {
  constructor(
    private readonly deps: {
      serverId: string
      wakeWorkers: (namespace: string, queues: readonly string[] | null) => void
      wakeTimers: (dueInMs: number) => void
    },
  ) {}

  /** The NOTIFY payload announcing ready runs in `queues` (null: any queue). */
  encodeNotice(namespace: string, queues: readonly string[] | null): string {
    return encodeReadyNotice({ origin: this.deps.serverId, namespace, queues: queues ? [...queues] : null })
  }

  /** Wakes idle workers on this server. */
  announceLocally(namespace: string, queues: readonly string[] | null): void {
    if (queues === null || queues.length > 0) this.deps.wakeWorkers(namespace, queues)
  }

  /** A run becomes due in `dueInMs`; make sure a timer fires by then. */
  announceScheduled(dueInMs: number): void {
    this.deps.wakeTimers(Math.max(0, dueInMs))
  }

  /**
   * Wakes idle workers on other servers by NOTIFY. Inside a transaction the
   * notice goes out at commit; call announceLocally after the commit too.
   */
  async notifyOtherServers(db: Executor, namespace: string, queues: readonly string[]): Promise<void> {
    if (queues.length > 0) await readyNotify(db, { notice: this.encodeNotice(namespace, queues) })
  }

  /** Whether a notice came from this server (already acted on locally). */
  isOwnNotice(origin: string): boolean {
    return origin === this.deps.serverId
  }
}
