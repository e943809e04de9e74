import type { ServerConfig } from '@stackshift/server'
import { StackShift, type Worker, type WorkerOptions } from '@stackshift/sdk'
import type pg from 'pg'
import { afterAll, afterEach, beforeAll } from 'vitest'
import { connect, createTestDatabase } from './database.js'
import { type RawClient, createRawClient } from './raw-client.js'
import { type TestServer, startTestServer } from './server.js'

/** What a test file works with; filled in before its first test. */
export interface TestEnvironment {
  databaseUrl: string
  server: TestServer
  /** An SDK client on the server. */
  stackshift: StackShift
  /** A client built from the .proto files alone. */
  raw: RawClient
  /** A plain connection to the test database, to read (and back-date) stored rows. */
  db: pg.Client
  /** Starts a worker of `stackshift` that is stopped after the current test. */
  startWorker(options: WorkerOptions): Promise<Worker>
}

/**
 * Registers hooks that give the test file a fresh database, a server on it
 * (with `overrides`), clients, and cleanup: workers after each test,
 * everything after the file.
 */
export function useTestEnvironment(overrides: Partial<ServerConfig> = {}): TestEnvironment {
  const workers: Worker[] = []
  const environment = {
    async startWorker(options: WorkerOptions): Promise<Worker> {
      const worker = environment.stackshift.worker(options)
      workers.push(worker)
      await worker.start()
      return worker
    },
  } as TestEnvironment

  beforeAll(async () => {
    environment.databaseUrl = await createTestDatabase()
    environment.server = await startTestServer(environment.databaseUrl, overrides)
    environment.stackshift = new StackShift({ address: environment.server.address })
    environment.raw = createRawClient(environment.server.address)
    environment.db = await connect(environment.databaseUrl)
  })

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((worker) => worker.stop()))
  })

  afterAll(async () => {
    // beforeAll may have failed before making some of these.
    const made: Partial<TestEnvironment> = environment
    made.stackshift?.close()
    made.raw?.close()
    await made.db?.end()
    await made.server?.stop()
  })

  return environment
}
