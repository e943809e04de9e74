import type { ClaimedRun } from '../core/run.js'
import type { Logger } from '../logger.js'
import type { QueueCapacitySample } from '../observability/metrics.js'
import type { ClaimedBatch, RunClaims } from '../operations/claim.js'

/** Something that takes leased runs: a worker stream, or a ClaimTask long-poll. */
export interface TaskConsumer {
  readonly namespace: string
  readonly queues: readonly string[]
  readonly jobs: readonly string[]
  readonly leaseMs: number
  readonly workerId: string
  /** Most runs one claim leases for it. */
  readonly claimMax: number
  /** How many more runs it can take now. */
  freeSlots(): number
  /** Hands over claimed runs. Returns false if it can no longer take them; they are then released. */
  deliver(runs: ClaimedRun[]): boolean
}

/**
 * A free slot of an idle consumer, held for a run that is about to be inserted
 * already leased to it (see Dispatcher.reserveIdle).
 */
export interface Reservation {
  readonly consumer: TaskConsumer
  /** The run was inserted: hand it over (or, if the consumer is gone, release it). */
  deliver(run: ClaimedRun): void
  /** The run was not inserted (deduplicated, or the insert failed): free the slot. */
  cancel(): void
}

/** A consumer's place in the dispatcher. */
export interface Subscription {
  /** Free slots grew: claim again if there may be work. */
  pump(): void
  /** Stop claiming for this consumer. */
  close(): void
}

class Entry implements Subscription {
  /** False once a claim came back short with no wake since: the queues are empty for this consumer. */
  mayHaveWork = true
  /** Counts wakes, so a wake during a claim is not lost when that claim comes back short. */
  wakeCount = 0
  /**
   * A claim for this consumer is running. One at a time: a second claim for
   * the same consumer would scan the head of the same ready index and step
   * over every run the first has locked but not yet committed. With two, a
   * drain of 100,000 runs cost PostgreSQL 34-37 µs a run in claims against
   * 25-26 with one, at the same rate; a worker keeps busy during a claim with
   * the runs it holds ready (its prefetch).
   */
  isClaiming = false
  /** Free slots held for runs being inserted already leased to this consumer (see Dispatcher.reserveIdle). */
  reservedSlots = 0
  isClosed = false
  rotation = 0
  retryTimer: NodeJS.Timeout | undefined
  /** Wakes the consumer when a rate limit that held runs back has room again. */
  opensTimer: NodeJS.Timeout | undefined
  readonly queues: ReadonlySet<string>
  readonly jobs: ReadonlySet<string>

  constructor(
    readonly consumer: TaskConsumer,
    private readonly dispatcher: Dispatcher,
  ) {
    this.queues = new Set(consumer.queues)
    this.jobs = new Set(consumer.jobs)
  }

  pump(): void {
    this.dispatcher.pump(this)
  }

  close(): void {
    this.isClosed = true
    clearTimeout(this.retryTimer)
    clearTimeout(this.opensTimer)
    this.dispatcher.remove(this)
  }
}

/**
 * Hands ready runs to consumers. A consumer claims only when it has free slots
 * and there may be work: after a wake (an enqueue or promotion here, a NOTIFY
 * from another server) or the slow backstop poll. Each claim is one statement
 * that leases up to as many runs as the consumer has free slots.
 */
export class Dispatcher {
  private readonly byNamespace = new Map<string, Set<Entry>>()
  private readonly claimsInFlight = new Set<Promise<void>>()
  private pollTimer: NodeJS.Timeout | undefined

  constructor(
    private readonly deps: {
      claims: RunClaims
      logger: Logger
      pollIntervalMs: number
    },
  ) {}

  /** Starts the backstop poll. */
  start(): void {
    this.pollTimer = setInterval(() => this.wakeAll(), this.deps.pollIntervalMs)
    this.pollTimer.unref()
  }

  /** Stops the poll and every subscription; resolves when claims in flight have settled (and released what they took). */
  async stop(): Promise<void> {
    clearInterval(this.pollTimer)
    for (const entries of this.byNamespace.values()) for (const entry of entries) entry.close()
    await Promise.all([...this.claimsInFlight])
  }

  subscribe(consumer: TaskConsumer): Subscription {
    const entry = new Entry(consumer, this)
    const entries = this.byNamespace.get(consumer.namespace) ?? new Set()
    entries.add(entry)
    this.byNamespace.set(consumer.namespace, entries)
    this.pump(entry)
    return entry
  }

  /** Runs became ready in these queues of the namespace (null: any queue). */
  wake(namespace: string, queues: readonly string[] | null): void {
    for (const entry of this.byNamespace.get(namespace) ?? []) {
      if (queues === null || entry.consumer.queues.some((queue) => queues.includes(queue))) this.wakeEntry(entry)
    }
  }

  /**
   * Holds a free slot of a consumer that is idle and waiting for runs of this
   * queue and job: its last claim found nothing ready, and nothing was
   * enqueued for it since. The enqueue then inserts the run already leased to
   * that consumer and hands it over after the commit: one statement instead of
   * an insert and a claim, so the run starts sooner. Only idle consumers
   * qualify, so a handed-off run never overtakes older ready runs that this
   * server knows of.
   */
  reserveIdle(namespace: string, queue: string, job: string): Reservation | undefined {
    for (const entry of this.byNamespace.get(namespace) ?? []) {
      const { consumer } = entry
      if (entry.isClosed || entry.mayHaveWork || entry.isClaiming) continue
      if (!entry.queues.has(queue) || !entry.jobs.has(job)) continue
      if (consumer.freeSlots() - entry.reservedSlots <= 0) continue
      entry.reservedSlots++
      let isSettled = false
      const settle = () => {
        if (isSettled) return false
        isSettled = true
        entry.reservedSlots--
        return true
      }
      return {
        consumer,
        deliver: (run) => {
          if (settle()) void this.deps.claims.handOver([run], (runs) => !entry.isClosed && consumer.deliver(runs), consumer.leaseMs)
        },
        cancel: () => {
          if (settle()) this.pump(entry)
        },
      }
    }
    return undefined
  }

  /** Every consumer looks for work (poll, or notifications may have been missed). */
  wakeAll(): void {
    for (const entries of this.byNamespace.values()) for (const entry of entries) this.wakeEntry(entry)
  }

  /** Number of subscribed consumers and their free slots. */
  stats(): { consumers: number; freeSlots: number } {
    let consumers = 0
    let freeSlots = 0
    for (const entries of this.byNamespace.values()) {
      for (const entry of entries) {
        consumers++
        freeSlots += entry.consumer.freeSlots()
      }
    }
    return { consumers, freeSlots }
  }

  /** Subscribed consumers and their free slots per queue; a consumer of several queues counts in each. */
  statsByQueue(): QueueCapacitySample[] {
    const byQueue = new Map<string, QueueCapacitySample>()
    for (const [namespace, entries] of this.byNamespace) {
      for (const entry of entries) {
        const freeSlots = entry.consumer.freeSlots()
        for (const queue of entry.queues) {
          const key = `${namespace}\u0000${queue}`
          const sample = byQueue.get(key)
          if (sample) {
            sample.consumers++
            sample.freeSlots += freeSlots
          } else byQueue.set(key, { namespace, queue, consumers: 1, freeSlots })
        }
      }
    }
    return [...byQueue.values()]
  }

  /** @internal used by Entry */
  remove(entry: Entry): void {
    const entries = this.byNamespace.get(entry.consumer.namespace)
    entries?.delete(entry)
    if (entries?.size === 0) this.byNamespace.delete(entry.consumer.namespace)
  }

  /** @internal used by Entry */
  pump(entry: Entry): void {
    const claim = this.claimFor(entry)
    this.claimsInFlight.add(claim)
    void claim.finally(() => this.claimsInFlight.delete(claim))
  }

  /**
   * Wakes the consumer at `at` (a rate limit's window opens then; nothing
   * else would announce it). Each claim says when, so the latest claim's
   * instant replaces an earlier one.
   */
  private wakeAt(entry: Entry, at: Date): void {
    clearTimeout(entry.opensTimer)
    entry.opensTimer = setTimeout(() => !entry.isClosed && this.wakeEntry(entry), Math.max(0, at.getTime() - Date.now()) + 1)
    entry.opensTimer.unref()
  }

  private wakeEntry(entry: Entry): void {
    entry.mayHaveWork = true
    entry.wakeCount++
    this.pump(entry)
  }

  private async claimFor(entry: Entry): Promise<void> {
    if (entry.isClaiming || entry.isClosed || !entry.mayHaveWork) return
    const { consumer } = entry
    // Slots held for handoffs are not free for a claim (none can start while it runs).
    const limit = Math.min(consumer.freeSlots() - entry.reservedSlots, consumer.claimMax)
    if (limit <= 0) return
    entry.isClaiming = true
    const wakeCount = entry.wakeCount
    let claimed: ClaimedBatch
    try {
      claimed = await this.deps.claims.claim({
        namespace: consumer.namespace,
        queues: rotate(consumer.queues, entry.rotation++),
        jobs: consumer.jobs,
        limit,
        leaseMs: consumer.leaseMs,
        workerId: consumer.workerId,
      })
    } catch (error) {
      this.deps.logger.warn({ err: error, workerId: consumer.workerId }, 'claim failed; retrying')
      clearTimeout(entry.retryTimer)
      entry.retryTimer = setTimeout(() => this.pump(entry), 1000)
      return
    } finally {
      entry.isClaiming = false
    }
    const { runs, isCutByBytes, opensAt } = claimed
    if (opensAt) this.wakeAt(entry, opensAt)
    if (!(await this.deps.claims.handOver(runs, (taken) => !entry.isClosed && consumer.deliver(taken), consumer.leaseMs))) return
    // A claim cut short by its byte budget left ready runs behind.
    if (runs.length < limit && !isCutByBytes && entry.wakeCount === wakeCount) entry.mayHaveWork = false
    this.pump(entry)
  }
}

/** The queues, starting at a different one each claim, so no queue starves the others. */
function rotate<T>(items: readonly T[], by: number): T[] {
  if (items.length < 2) return [...items]
  const start = by % items.length
  return [...items.slice(start), ...items.slice(0, start)]
}
