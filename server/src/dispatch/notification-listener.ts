import pg from 'pg'
import {
  type ReadyNotice,
  apiKeyRevokedChannel,
  flowPoliciesChannel,
  readyChannel,
  runCancelledChannel,
  runFinishedChannel,
} from '../db/channels.js'
import type { Logger } from '../logger.js'

/**
 * Holds one dedicated connection that LISTENs for ready, finished and cancelled runs, revoked API keys and
 * changed flow-control policies.
 * If the connection drops it reconnects with backoff, and then reports
 * `onReconnected`, since notices sent meanwhile are lost (callers recheck).
 */
export class NotificationListener {
  private client: pg.Client | undefined
  private isStopped = false
  private retryDelayMs = 0
  private retryTimer: NodeJS.Timeout | undefined

  constructor(
    private readonly deps: {
      url: string
      logger: Logger
      onReady: (notice: ReadyNotice) => void
      onRunFinished: (runId: string) => void
      onRunCancelled: (namespace: string, runId: string) => void
      onApiKeyRevoked: (keyId: string) => void
      onFlowPoliciesChanged: () => void
      onReconnected: () => void
    },
  ) {}

  /** Connects and starts listening. Rejects if the first connection fails. */
  async start(): Promise<void> {
    await this.connect()
  }

  async stop(): Promise<void> {
    this.isStopped = true
    clearTimeout(this.retryTimer)
    const client = this.client
    this.client = undefined
    await client?.end().catch(() => {})
  }

  private async connect(): Promise<void> {
    // TCP keepalive: a connection whose peer vanished (a half-open one) is noticed and replaced.
    const client = new pg.Client({
      connectionString: this.deps.url,
      application_name: 'stackshift-listener',
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    })
    client.on('notification', (message) => this.handle(message.channel, message.payload ?? ''))
    client.on('error', (error) => this.lost(client, error))
    client.on('end', () => this.lost(client, undefined))
    await client.connect()
    await client.query(
      `LISTEN ${readyChannel}; LISTEN ${runFinishedChannel}; LISTEN ${runCancelledChannel}; LISTEN ${apiKeyRevokedChannel}; ` +
        `LISTEN ${flowPoliciesChannel}`,
    )
    if (this.isStopped) {
      await client.end()
      return
    }
    this.client = client
    this.retryDelayMs = 0
  }

  private handle(channel: string, payload: string): void {
    if (channel === runFinishedChannel) {
      this.deps.onRunFinished(payload)
      return
    }
    if (channel === runCancelledChannel) {
      const slash = payload.indexOf('/')
      this.deps.onRunCancelled(payload.slice(0, slash), payload.slice(slash + 1))
      return
    }
    if (channel === apiKeyRevokedChannel) {
      this.deps.onApiKeyRevoked(payload)
      return
    }
    if (channel === flowPoliciesChannel) {
      this.deps.onFlowPoliciesChanged()
      return
    }
    try {
      this.deps.onReady(JSON.parse(payload) as ReadyNotice)
    } catch (error) {
      this.deps.logger.warn({ err: error, payload }, 'ignoring malformed ready notice')
    }
  }

  private lost(client: pg.Client, error: Error | undefined): void {
    if (this.client !== client || this.isStopped) return
    this.client = undefined
    client.end().catch(() => {})
    this.deps.logger.warn({ err: error }, 'notification connection lost; reconnecting')
    this.scheduleReconnect()
  }

  private scheduleReconnect(): void {
    this.retryDelayMs = Math.min(10_000, Math.max(250, this.retryDelayMs * 2))
    this.retryTimer = setTimeout(() => {
      this.connect().then(
        () => {
          this.deps.logger.info('notification connection restored')
          this.deps.onReconnected()
        },
        (error: unknown) => {
          this.deps.logger.warn({ err: error }, 'notification connection failed; retrying')
          if (!this.isStopped) this.scheduleReconnect()
        },
      )
    }, this.retryDelayMs)
    this.retryTimer.unref()
  }
}
