import pg from 'pg'

/**
 * Asks the database whether it answers, on a connection of its own. Health
 * must say whether the database is there, not whether the pool has a
 * connection free: a pool busy with slow statements is not a dead database,
 * and taking servers out of rotation for it would move the load, not lower
 * it. The connection opens on first use and again after it is lost; each
 * check is one `SELECT 1` on it, bounded by `timeoutMs` (connecting included).
 */
export class DatabaseHealthProbe {
  private client: pg.Client | undefined
  private isClosed = false

  constructor(private readonly options: { url: string; timeoutMs: number }) {}

  /** Resolves when the database answered; rejects when it did not (the connection is then dropped and the next check opens another). */
  async check(): Promise<void> {
    if (this.isClosed) throw new Error('the health probe is closed')
    const client = this.client ?? (await this.connect())
    try {
      await client.query('SELECT 1')
    } catch (error) {
      this.drop(client)
      throw error
    }
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    this.isClosed = true
    const client = this.client
    this.client = undefined
    await client?.end().catch(() => {})
  }

  private async connect(): Promise<pg.Client> {
    const { url, timeoutMs } = this.options
    const client = new pg.Client({
      connectionString: url,
      application_name: 'stackshift-health',
      connectionTimeoutMillis: timeoutMs,
      // Given up on by the client (a query that does not answer) and by the database (one that runs).
      query_timeout: timeoutMs,
      statement_timeout: timeoutMs,
    })
    // A connection lost between checks: the next check opens another.
    client.on('error', () => this.drop(client))
    client.on('end', () => this.drop(client))
    try {
      await client.connect()
    } catch (error) {
      this.drop(client)
      throw error
    }
    // Closed while connecting: this connection would never be closed.
    if (this.isClosed) {
      this.drop(client)
      throw new Error('the health probe is closed')
    }
    this.client = client
    return client
  }

  private drop(client: pg.Client): void {
    if (this.client === client) this.client = undefined
    client.end().catch(() => {})
  }
}
