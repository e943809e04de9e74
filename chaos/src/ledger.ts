import pg from 'pg'

/**
 * The ledger: every side effect of a step, recorded outside StackShift in a
 * table of its own (schema `chaos`, in the same PostgreSQL), with the run,
 * the step, the attempt that executed it and a nonce the step returns. The
 * checks compare it with StackShift's own tables: a step's side effect must
 * be there at least once, and more than once only where an attempt died
 * inside that step.
 */
export const ledgerTable = 'chaos.ledger'

/** Creates the ledger's schema and table (once per run, by the harness). */
export async function createLedger(client: pg.Client): Promise<void> {
  await client.query(`
    CREATE SCHEMA IF NOT EXISTS chaos;
    CREATE TABLE IF NOT EXISTS ${ledgerTable} (
      seq bigserial PRIMARY KEY,
      run_id uuid NOT NULL,
      step_id text NOT NULL,
      attempt integer NOT NULL,
      worker_id text NOT NULL,
      nonce uuid NOT NULL UNIQUE,
      recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
  `)
}

/** One side effect. */
export interface LedgerEntry {
  runId: string
  stepId: string
  attempt: number
  workerId: string
  nonce: string
}

/** How long a side effect keeps trying while PostgreSQL is away: longer than any outage a run injects. */
const giveUpAfterMs = 5 * 60_000

/** A worker's connection to the ledger. */
export class Ledger {
  private readonly pool: pg.Pool

  constructor(url: string) {
    this.pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 2000, application_name: 'stackshift-chaos-ledger' })
    // An idle connection that PostgreSQL ended (a restart): the pool drops it; the next insert opens another.
    this.pool.on('error', () => {})
  }

  /**
   * Records a side effect, retrying while PostgreSQL cannot take it, as a
   * side effect on any service that retries would: an outage delays a step,
   * it does not fail it.
   */
  async record(entry: LedgerEntry): Promise<void> {
    const giveUpAt = Date.now() + giveUpAfterMs
    for (let delayMs = 100; ; delayMs = Math.min(delayMs * 2, 1000)) {
      try {
        await this.pool.query(`INSERT INTO ${ledgerTable} (run_id, step_id, attempt, worker_id, nonce) VALUES ($1, $2, $3, $4, $5)`, [
          entry.runId,
          entry.stepId,
          entry.attempt,
          entry.workerId,
          entry.nonce,
        ])
        return
      } catch (error) {
        // The insert committed and its answer was lost (PostgreSQL stopped just then): it is recorded.
        if ((error as { code?: unknown }).code === '23505') return
        if (Date.now() > giveUpAt) throw error
        await new Promise((resolve) => setTimeout(resolve, delayMs))
      }
    }
  }

  async close(): Promise<void> {
    await this.pool.end()
  }
}
