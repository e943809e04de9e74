import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'
import { createLogger, startEmbeddedPostgres } from '@stackshift/server'

declare module 'vitest' {
  export interface ProvidedContext {
    /** A PostgreSQL superuser connection string; each test file creates its own database with it. */
    adminDatabaseUrl: string
  }
}

/**
 * One PostgreSQL for the whole run: STACKSHIFT_TEST_DATABASE_URL if set, else
 * the embedded one in a throwaway directory. Durability is off: these
 * clusters are deleted afterwards, and tests assert behaviour, not speed.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.STACKSHIFT_TEST_DATABASE_URL
  if (external) {
    project.provide('adminDatabaseUrl', external)
    return async () => {}
  }
  const dataDir = await mkdtemp(join(tmpdir(), 'stackshift-test-pg-'))
  const postgres = await startEmbeddedPostgres({
    dataDir,
    port: 0,
    logger: createLogger('warn'),
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: '400' },
  })
  const adminUrl = new URL(postgres.url)
  adminUrl.pathname = '/postgres'
  project.provide('adminDatabaseUrl', adminUrl.toString())
  return async () => {
    await postgres.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
}
