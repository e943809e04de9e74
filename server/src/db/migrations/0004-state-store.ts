import type { Knex } from 'knex'

/**
 * The State Store: key/value entries and locks.
 *
 * - Keys sort byte-wise (COLLATE "C"), so a prefix is a range of the primary
 *   key and List reads only the entries it returns.
 * - Expired entries stay until the sweeper deletes them; every read and
 *   conditional write treats them as absent, on the database clock.
 * - Fencing tokens come from one sequence, so every acquisition of any lock
 *   gets a larger token; a lock row holds the token of its latest acquisition.
 * - Operations made inside a run are recorded as steps of kind 'state'.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TYPE stackshift.step_kind ADD VALUE 'state';

    CREATE TABLE stackshift.state (
      namespace text NOT NULL,
      key text COLLATE "C" NOT NULL,
      version bigint NOT NULL,
      expires_at timestamptz,
      updated_at timestamptz NOT NULL,
      value jsonb NOT NULL,
      PRIMARY KEY (namespace, key)
    );
    CREATE INDEX state_expiring ON stackshift.state (expires_at) WHERE expires_at IS NOT NULL;

    CREATE SEQUENCE stackshift.fencing_tokens;
    CREATE TABLE stackshift.locks (
      namespace text NOT NULL,
      key text COLLATE "C" NOT NULL,
      lock_id uuid NOT NULL,
      fencing_token bigint NOT NULL UNIQUE,
      expires_at timestamptz NOT NULL,
      PRIMARY KEY (namespace, key)
    );
  `)
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TABLE stackshift.locks;
    DROP SEQUENCE stackshift.fencing_tokens;
    DROP TABLE stackshift.state;
    DELETE FROM stackshift.steps WHERE kind = 'state';
  `)
}
