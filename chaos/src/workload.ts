import { Metadata, type ServiceError, credentials } from '@grpc/grpc-js'
import { RunServiceClient, type WaitForRunResponse } from '@stackshift/proto/run-service'
import { type Logger, StackShift, type StackShiftError } from '@stackshift/sdk'
import { statusName } from './health.js'
import { type ChaosPayload, eventName, jobName, queueName } from './job.js'
import type { Random } from './random.js'

/** What the driver knows of one logical run (one idempotency key). */
export interface EnqueueRecord {
  key: string
  /** The run id of the first acknowledgement; undefined while none came. */
  runId: string | undefined
  ackedAt: number | undefined
  /** Every run id an acknowledgement for this key returned (one, if idempotency holds). */
  ackedRunIds: Set<string>
  /** Enqueue calls made for the key (the first, retries of unanswered ones, and a deliberate repeat). */
  calls: number
  /** When the matching event was stored (acknowledged). */
  eventSentAt: number | undefined
}

/** One sampled WaitForRun: the call that saw the run finished, timed by this process's clock. */
export interface WaitRecord {
  key: string
  runId: string
  /** When the call that returned the finished run was made, and when it returned (ms since the epoch). */
  callStartedAt: number | undefined
  returnedAt: number | undefined
  calls: number
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The status code of a failed SDK or gRPC call, by name ("UNAVAILABLE"). */
function codeName(error: unknown): string {
  const code = (error as Partial<StackShiftError> | null)?.code
  return typeof code === 'number' ? statusName(code) : 'NOT_A_STATUS'
}

/**
 * The load: runs enqueued at a steady rate on either server, with idempotency
 * keys, each retried until acknowledged; each run's event sent (and retried)
 * a little later; one run in `waitSampleEvery` waited for with WaitForRun.
 * Every call that fails is counted by status code.
 */
export class Workload {
  readonly records = new Map<string, EnqueueRecord>()
  readonly waits: WaitRecord[] = []
  /** Failed calls: `<call> <CODE>` -> count. */
  readonly failures = new Map<string, number>()
  private readonly clients: StackShift[]
  private readonly rawClients: RunServiceClient[]
  private readonly tasks = new Set<Promise<void>>()
  private isEnqueueing = false
  private giveUpAt = Number.POSITIVE_INFINITY
  private sequence = 0
  private loop: Promise<void> | undefined

  constructor(
    private readonly options: {
      addresses: readonly string[]
      runsPerSecond: number
      waitSampleEvery: number
      random: Random
      logger: Logger
    },
  ) {
    this.clients = options.addresses.map((address) => new StackShift({ address, logger: options.logger, callTimeoutMs: 30_000 }))
    // Trying again soon after a server restart: gRPC's backoff would delay the answers being timed.
    this.rawClients = options.addresses.map(
      (address) =>
        new RunServiceClient(address, credentials.createInsecure(), {
          'grpc.use_local_subchannel_pool': 1,
          'grpc.max_reconnect_backoff_ms': 1000,
        }),
    )
  }

  start(): void {
    this.isEnqueueing = true
    this.loop = (async () => {
      const intervalMs = 1000 / this.options.runsPerSecond
      for (let next = Date.now(); this.isEnqueueing; next += intervalMs) {
        this.track(this.runOne())
        await sleep(Math.max(0, next + intervalMs - Date.now()))
      }
    })()
  }

  /** Stops enqueueing new runs (retries of unacknowledged ones go on). */
  async stopEnqueueing(): Promise<void> {
    this.isEnqueueing = false
    await this.loop
  }

  /** Waits until every enqueue, event and sampled wait is done, or gives them up at `deadline`. */
  async settle(deadline: number): Promise<void> {
    this.giveUpAt = deadline
    while (this.tasks.size > 0 && Date.now() < deadline + 35_000) await Promise.race([...this.tasks, sleep(1000)])
  }

  close(): void {
    for (const client of this.clients) client.close()
    for (const client of this.rawClients) client.close()
  }

  /** Runs acknowledged so far. */
  acknowledged(): EnqueueRecord[] {
    return [...this.records.values()].filter((record) => record.runId !== undefined)
  }

  private track(task: Promise<void>): void {
    this.tasks.add(task)
    void task.finally(() => this.tasks.delete(task))
  }

  private fail(call: string, error: unknown): void {
    const name = `${call} ${codeName(error)}`
    this.failures.set(name, (this.failures.get(name) ?? 0) + 1)
  }

  private get isGivingUp(): boolean {
    return Date.now() > this.giveUpAt
  }

  private async runOne(): Promise<void> {
    const { random } = this.options
    const key = `k${++this.sequence}`
    const payload: ChaosPayload = {
      key,
      stepMs: { reserve: random.int(10, 150), charge: random.int(200, 1500), ship: random.int(10, 150) },
      sleepMs: random.int(200, 1500),
    }
    const record: EnqueueRecord = { key, runId: undefined, ackedAt: undefined, ackedRunIds: new Set(), calls: 0, eventSentAt: undefined }
    this.records.set(key, record)
    const server = random.int(0, this.clients.length - 1)
    const eventDelayMs = random.int(200, 4000)
    const isSampled = this.sequence % this.options.waitSampleEvery === 0
    // One run in eight is enqueued once more after its acknowledgement, on the other server: the same run must come back.
    const isRepeated = this.sequence % 8 === 1
    if (!(await this.enqueueUntilAcknowledged(record, payload, server))) return
    if (isSampled) this.track(this.waitForFinish(record))
    if (isRepeated) this.track(this.enqueueUntilAcknowledged(record, payload, 1 - server).then(() => {}))
    await sleep(eventDelayMs)
    await this.sendEventUntilStored(record)
  }

  private async enqueueUntilAcknowledged(record: EnqueueRecord, payload: ChaosPayload, firstServer: number): Promise<boolean> {
    for (let server = firstServer; !this.isGivingUp; server = (server + 1) % this.clients.length) {
      record.calls++
      try {
        const run = await this.clients[server]!.queue(queueName).enqueue(jobName, payload, {
          idempotencyKey: record.key,
          maxAttempts: 10,
        })
        record.ackedRunIds.add(run.id)
        if (record.runId === undefined) {
          record.runId = run.id
          record.ackedAt = Date.now()
        }
        return true
      } catch (error) {
        this.fail('enqueue', error)
        await sleep(300)
      }
    }
    return false
  }

  private async sendEventUntilStored(record: EnqueueRecord): Promise<void> {
    for (let server = 0; !this.isGivingUp; server = (server + 1) % this.clients.length) {
      try {
        await this.clients[server]!.sendEvent(eventName, { key: record.key }, { id: `approve:${record.key}` })
        record.eventSentAt = Date.now()
        return
      } catch (error) {
        this.fail('sendEvent', error)
        await sleep(300)
      }
    }
  }

  /**
   * Waits for the run with WaitForRun, one call at a time (a raw gRPC call,
   * so that each is timed on its own: the SDK's would retry inside), moving
   * to the other server after a failure.
   */
  private async waitForFinish(record: EnqueueRecord): Promise<void> {
    const wait: WaitRecord = { key: record.key, runId: record.runId!, callStartedAt: undefined, returnedAt: undefined, calls: 0 }
    this.waits.push(wait)
    for (let server = 0; !this.isGivingUp;) {
      const callStartedAt = Date.now()
      wait.calls++
      try {
        const response = await this.callWaitForRun(server, wait.runId, 20_000)
        if (response.finished) {
          wait.callStartedAt = callStartedAt
          wait.returnedAt = Date.now()
          return
        }
      } catch (error) {
        this.fail('waitForRun', error)
        server = (server + 1) % this.rawClients.length
        await sleep(200)
      }
    }
  }

  private callWaitForRun(server: number, runId: string, timeoutMs: number): Promise<WaitForRunResponse> {
    const client = this.rawClients[server]!
    return new Promise((resolve, reject) => {
      client.waitForRun(
        { namespace: 'default', runId, timeoutMs },
        new Metadata(),
        { deadline: Date.now() + timeoutMs + 10_000 },
        (error: ServiceError | null, response: WaitForRunResponse) => (error ? reject(error) : resolve(response)),
      )
    })
  }
}
