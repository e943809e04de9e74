import { randomUUID } from 'node:crypto'
import { Metadata, type ServiceError, credentials, status } from '@grpc/grpc-js'
import { RunServiceClient } from '@stackshift/proto/run-service'
import { type Logger, StackShift, type StackShiftError, type StateLock } from '@stackshift/sdk'
import { checkHealth, statusName } from './health.js'
import type { ChaosPostgres } from './postgres.js'
import type { ServerProcess, WorkerProcess } from './processes.js'
import { type Fault, describeFault, serverOfWorker } from './schedule.js'

/** What the faults act on. */
export interface Cluster {
  postgres: ChaosPostgres
  servers: ServerProcess[]
  workers: WorkerProcess[]
}

/** What happened when a fault was injected. Times are ms since the epoch, on this process's clock. */
export interface FaultRecord {
  fault: Fault
  startedAt: number
  endedAt: number
  /** pg-restart, pg-outage: from the stop's start to the start's return (PostgreSQL accepting connections again). */
  outage?: { from: number; to: number }
  /** worker-kill, worker-stop: the incarnation acted on. */
  workerId?: string
  /** worker-kill, worker-stop: its steps in flight (side effect recorded, result not stored) when the signal was sent. */
  stepsInFlight?: number
  /** server-failpoint: whether the server reached the failpoint (and killed itself there). */
  isReached?: boolean
  /** server-failpoint: ms from the armed server listening to its death at the failpoint. */
  reachedAfterMs?: number
  /** server-kill, server-failpoint: ms from the server listening again to its workers connected again (null: not within 30 s). */
  workersBackAfterMs?: number | null
  /** pg-restart, pg-outage: per server, ms from PostgreSQL back to the server's health SERVING (null: not within 30 s). */
  servingAfterMs?: Array<number | null>
  /** pg-outage: per server, whether it reported NOT_SERVING while PostgreSQL was down. */
  sawNotServing?: boolean[]
  /** listener-kill: LISTEN connections ended. */
  listenersEnded?: number
  /** pool-exhaustion: how the lock waits ended, by outcome. */
  outcomes?: Record<string, number>
  /** pool-exhaustion: what another client saw meanwhile (a GetRun every 200 ms on the same server): slowest answer, and answers by code. */
  bystander?: { calls: number; slowestMs: number; codes: Record<string, number> }
  /** The fault could not be injected as planned. */
  error?: string
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * A worker is killed or stopped in the middle of a step: the fault waits up
 * to this long for one (a busy worker is in one most of the time), and goes
 * ahead anyway if none comes; the checks then say so.
 */
const midStepWaitMs = 20_000
const sleepUntil = (at: number) => sleep(Math.max(0, at - Date.now()))

/**
 * Injects the faults at their planned times after `startedAt`: the
 * sequential ones one after another (each waits for the previous to be
 * over, and then for at least `quietMs`), the worker stops alongside. On a
 * loaded machine faults take longer than planned, and the plan's gaps are
 * used up; the quiet time keeps one fault's recovery (a worker's writes and
 * heartbeats landing on its restarted server) from being cut short by the
 * next, which would then cost attempts that neither fault costs alone.
 */
export async function injectFaults(options: {
  cluster: Cluster
  faults: readonly Fault[]
  startedAt: number
  quietMs: number
  /** No fault starts after this instant (the long profile's length); the ones left are skipped. */
  endsAt: number
  log: (line: string) => void
  sdkLogger: Logger
}): Promise<{ records: FaultRecord[]; skipped: Fault[] }> {
  const { cluster, faults, startedAt, log } = options
  const records: FaultRecord[] = []
  const skipped: Fault[] = []
  let previousEndedAt = 0
  const inject = async (fault: Fault) => {
    const isSequential = fault.kind !== 'worker-stop'
    await sleepUntil(Math.max(startedAt + fault.atMs, isSequential ? previousEndedAt + options.quietMs : 0))
    if (Date.now() > options.endsAt) {
      skipped.push(fault)
      return
    }
    log(`fault ${describeFault(fault)} (at +${((Date.now() - startedAt) / 1000).toFixed(1)}s)`)
    const record: FaultRecord = { fault, startedAt: Date.now(), endedAt: 0 }
    records.push(record)
    try {
      await injectOne(fault, record, cluster, options.sdkLogger)
    } catch (error) {
      record.error = error instanceof Error ? error.message : String(error)
      log(`fault ${fault.kind} failed: ${record.error}`)
    }
    record.endedAt = Date.now()
    if (isSequential) previousEndedAt = record.endedAt
  }
  const stops = faults.filter((fault) => fault.kind === 'worker-stop').map(inject)
  for (const fault of faults) if (fault.kind !== 'worker-stop') await inject(fault)
  await Promise.all(stops)
  if (skipped.length > 0) log(`${skipped.length} planned faults skipped: the run is over (faults took longer than planned)`)
  return { records: records.sort((a, b) => a.startedAt - b.startedAt), skipped }
}

async function injectOne(fault: Fault, record: FaultRecord, cluster: Cluster, sdkLogger: Logger): Promise<void> {
  const { postgres, servers, workers } = cluster
  switch (fault.kind) {
    case 'worker-kill': {
      const worker = workers[fault.worker]!
      record.workerId = worker.current?.workerId
      record.stepsInFlight = await worker.waitForStepInFlight(midStepWaitMs)
      await worker.kill()
      await sleep(1000)
      await worker.start()
      return
    }
    case 'worker-stop': {
      const worker = workers[fault.worker]!
      record.workerId = worker.current?.workerId
      record.stepsInFlight = await worker.waitForStepInFlight(midStepWaitMs)
      worker.stop()
      await sleep(fault.durationMs)
      worker.resume()
      return
    }
    case 'server-kill': {
      const server = servers[fault.server]!
      await server.kill()
      await sleep(1000)
      await server.startUntilUp()
      record.workersBackAfterMs = await waitForWorkersOf(server, workers)
      return
    }
    case 'server-failpoint': {
      const server = servers[fault.server]!
      await server.kill()
      // Armed, it dies the first time it gets there; if it never gets there, it is killed after 30 s.
      record.isReached = false
      if (await server.start([fault.failpoint])) {
        const listeningAt = Date.now()
        const exit = await server.waitForExit(30_000)
        record.isReached = exit?.signal === 'SIGKILL'
        if (record.isReached) record.reachedAfterMs = Date.now() - listeningAt
      } else {
        record.isReached = (await server.waitForExit(0))?.signal === 'SIGKILL'
      }
      await server.kill()
      await sleep(500)
      await server.startUntilUp()
      record.workersBackAfterMs = await waitForWorkersOf(server, workers)
      return
    }
    case 'pg-restart': {
      const from = Date.now()
      await postgres.restartFast()
      record.outage = { from, to: Date.now() }
      record.servingAfterMs = await timeUntilServing(servers, record.outage.to)
      return
    }
    case 'pg-outage': {
      const from = Date.now()
      await postgres.stopFast()
      const watch = watchNotServing(servers, from + fault.durationMs)
      await sleepUntil(from + fault.durationMs)
      record.sawNotServing = await watch
      await postgres.start()
      record.outage = { from, to: Date.now() }
      record.servingAfterMs = await timeUntilServing(servers, record.outage.to)
      return
    }
    case 'listener-kill':
      record.listenersEnded = await postgres.terminateListeners()
      return
    case 'pool-exhaustion': {
      const address = servers[fault.server]!.address
      let isOver = false
      const bystander = watchBystander(address, () => isOver)
      record.outcomes = await exhaustPool(address, fault.callers, fault.durationMs, sdkLogger).finally(() => (isOver = true))
      record.bystander = await bystander
      return
    }
  }
}

/**
 * Waits (up to 30 s) until the workers of a restarted server that are not
 * stopped have connected to it again: the fault is over when the system is
 * whole again, and the next one does not strike a worker cut off from its
 * only server (its leases would run out, and an outage would be blamed).
 */
async function waitForWorkersOf(server: ServerProcess, workers: readonly WorkerProcess[]): Promise<number | null> {
  const ids = workers
    .filter((worker) => serverOfWorker(worker.index) === server.index && !worker.isFrozen)
    .flatMap((worker) => (worker.current ? [worker.current.workerId] : []))
  return (await server.waitForWorkers(ids, 30_000)) ?? null
}

/** Per server: whether its health said NOT_SERVING at some point before `until`. */
async function watchNotServing(servers: readonly ServerProcess[], until: number): Promise<boolean[]> {
  const seen = servers.map(() => false)
  while (Date.now() < until) {
    const states = await Promise.all(servers.map((server) => checkHealth(server.address)))
    states.forEach((state, index) => {
      if (state === 'NOT_SERVING') seen[index] = true
    })
    await sleep(500)
  }
  return seen
}

/** Per server: ms from `since` until its health answered SERVING (polled every 200 ms), or null if not within 30 s. */
async function timeUntilServing(servers: readonly ServerProcess[], since: number): Promise<Array<number | null>> {
  return Promise.all(
    servers.map(async (server) => {
      while (Date.now() - since < 30_000) {
        if ((await checkHealth(server.address)) === 'SERVING') return Date.now() - since
        await sleep(200)
      }
      return null
    }),
  )
}

/** GetRun of an unknown run (one query) every 200 ms until `isOver`, on a connection of its own: how long another client waits. */
async function watchBystander(address: string, isOver: () => boolean): Promise<NonNullable<FaultRecord['bystander']>> {
  // A connection of its own that tries again soon after a failure (see checkHealth).
  const client = new RunServiceClient(address, credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.max_reconnect_backoff_ms': 1000,
  })
  const seen = { calls: 0, slowestMs: 0, codes: {} as Record<string, number> }
  try {
    while (!isOver()) {
      const startedAt = Date.now()
      const code = await new Promise<number>((resolve) =>
        client.getRun(
          { namespace: 'default', runId: randomUUID() },
          new Metadata(),
          { deadline: Date.now() + 30_000 },
          (error: ServiceError | null) => resolve(error ? error.code : status.OK),
        ),
      )
      seen.calls++
      seen.slowestMs = Math.max(seen.slowestMs, Date.now() - startedAt)
      const name = statusName(code)
      seen.codes[name] = (seen.codes[name] ?? 0) + 1
      await sleep(200)
    }
  } finally {
    client.close()
  }
  return seen
}

/**
 * A client apart from the workload holds a lock and sends `callers` calls
 * that wait for it at once, for `durationMs`: the server keeps polling the
 * lock for each, and they compete with everything else for its connection
 * pool. Returns how the waits ended (`LockUnavailableError` is the expected
 * end: the lock stays held).
 */
async function exhaustPool(address: string, callers: number, durationMs: number, logger: Logger): Promise<Record<string, number>> {
  const client = new StackShift({ address, logger, callTimeoutMs: durationMs + 60_000 })
  const outcomes: Record<string, number> = {}
  const count = (outcome: string) => (outcomes[outcome] = (outcomes[outcome] ?? 0) + 1)
  try {
    // The server may be restarting after the previous fault: try again for a while, each time on a new key
    // (a lock taken by a call whose answer was lost would hold up the next try).
    let key = ''
    let holder: StateLock | undefined
    for (const giveUpAt = Date.now() + 60_000; !holder;) {
      key = `chaos:exhaust:${randomUUID()}`
      try {
        holder = await client.state.lock(key, { ttl: durationMs + 30_000 })
      } catch (error) {
        if (!(error as Partial<StackShiftError>).isRetryable || Date.now() > giveUpAt) throw error
        await sleep(500)
      }
    }
    await Promise.all(
      Array.from({ length: callers }, async () => {
        try {
          const lock = await client.state.lock(key, { ttl: 5_000, waitMs: durationMs })
          count('acquired')
          await lock.release()
        } catch (error) {
          count(error instanceof Error ? error.name : 'unknown')
        }
      }),
    )
    await holder.release().catch(() => count('holder release failed'))
  } finally {
    client.close()
  }
  return outcomes
}
