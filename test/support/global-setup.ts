import { inspect } from 'node:util'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'
import { createLogger, type EmbeddedPostgresHandle, startEmbeddedPostgres } from '@stackshift/server'

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
 *
 * A failure is printed here, cause by cause. An exception that escapes the
 * setup uncaught would otherwise end the run with exit code 1 and no word:
 * Node emits 'exit' before it prints the exception, and vitest's 'exit'
 * handler calls process.exit().
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const reportUncaught = (error: unknown) => console.error(describeFailure('an uncaught exception ended the test setup', error))
  process.on('uncaughtExceptionMonitor', reportUncaught)
  try {
    return await provideDatabase(project)
  } catch (error) {
    console.error(
      describeFailure('the test setup could not provide a PostgreSQL (set STACKSHIFT_TEST_DATABASE_URL to use your own)', error),
    )
    throw new Error('test setup failed: see the error above', { cause: error })
  } finally {
    process.removeListener('uncaughtExceptionMonitor', reportUncaught)
  }
}

async function provideDatabase(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.STACKSHIFT_TEST_DATABASE_URL
  if (external) {
    project.provide('adminDatabaseUrl', external)
    return async () => {}
  }
  const dataDir = await mkdtemp(join(tmpdir(), 'stackshift-test-pg-'))
  let postgres: EmbeddedPostgresHandle
  try {
    postgres = await startEmbeddedPostgres({
      dataDir,
      port: 0,
      logger: createLogger('warn'),
      settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: '400' },
    })
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true })
    throw error
  }
  const adminUrl = new URL(postgres.url)
  adminUrl.pathname = '/postgres'
  project.provide('adminDatabaseUrl', adminUrl.toString())
  return async () => {
    await postgres.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
}

/** The error's stack, then each cause's (an embedded PostgreSQL that did not start quotes its log in its message). */
function describeFailure(headline: string, error: unknown): string {
  const lines = [`\n${headline}:`]
  for (let cause = error, depth = 0; cause !== undefined && depth < 10; cause = (cause as { cause?: unknown }).cause, depth++) {
    const text = cause instanceof Error ? (cause.stack ?? `${cause.name}: ${cause.message}`) : inspect(cause)
    lines.push(depth === 0 ? text : `caused by: ${text}`)
    if (!(cause instanceof Error)) break
  }
  return lines.join('\n') + '\n'
}
