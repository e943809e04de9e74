import type { Knex } from 'knex'

/**
 * API keys. A key's secret is never stored: only its SHA-256 (the secret is
 * 192 random bits, so a fast hash is enough; there is nothing to guess). The
 * id is public and is part of the key as given to clients, so a key is found
 * by its primary key. Revoked keys stay, with revoked_at, for the record.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE stackshift.api_keys (
      id text PRIMARY KEY,
      name text NOT NULL,
      namespace text NOT NULL,
      scopes text[] NOT NULL,
      secret_sha256 bytea NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      expires_at timestamptz,
      revoked_at timestamptz
    );
  `)
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`DROP TABLE stackshift.api_keys`)
}
