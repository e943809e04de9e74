import { ResourceExhaustedError } from '../core/errors.js'
import { limits } from '../core/limits.js'

/** How a group commit batches, and how much it lets wait. */
export interface GroupCommitOptions {
  /** Most items in one batch (one statement). */
  maxBatchSize: number
  /** Batches written at once. */
  maxInFlight: number
  /**
   * Most items waiting for a batch (not counting those being written); an item
   * beyond it is refused with ResourceExhaustedError instead of queued. Default
   * `limits.pendingWritesMax`.
   */
  maxPending?: number
  /** What the items are, plural, for the refusal's message ("step results"). Default "writes". */
  itemsName?: string
  /** Whether an error that failed a whole batch may come from one item's data (see the constructor). */
  isItemError: (error: unknown) => boolean
}

/**
 * Group commit: callers submit one item each; items that arrive while a write
 * is in flight are written together in the next batch, and each caller is
 * answered only after the batch holding its item has committed.
 *
 * There is no timer: when nothing is in flight an item is written on the next
 * turn of the event loop, so an idle server answers at once, and under load the
 * batches grow by themselves to whatever arrives during one round trip.
 *
 * What waits is bounded (`maxPending`): when the database falls behind, callers
 * beyond it are refused at once (RESOURCE_EXHAUSTED, retry later) rather than
 * held in memory for as long as the backlog lasts.
 */
export class GroupCommit<Item, Outcome> {
  private pending: Array<{ item: Item; resolve: (outcome: Outcome) => void; reject: (error: unknown) => void }> = []
  private inFlight = 0
  private isScheduled = false

  /**
   * @param write writes a batch in one transaction and returns, per item in
   *   order, its outcome or the error for that item alone. Throwing fails the
   *   whole batch; then, if the error may come from one item's data
   *   (`isItemError`) and the batch held several items, each is retried on its
   *   own so one bad item cannot fail its neighbours.
   */
  constructor(
    private readonly write: (items: Item[]) => Promise<Array<Outcome | Error>>,
    private readonly options: GroupCommitOptions,
  ) {}

  /** Resolves with the item's outcome once its batch has committed; rejects at once with ResourceExhaustedError if too many wait. */
  submit(item: Item): Promise<Outcome> {
    const refusal = this.refusal(1)
    if (refusal) return Promise.reject(refusal)
    return new Promise((resolve, reject) => {
      this.pending.push({ item, resolve, reject })
      this.schedule()
    })
  }

  /** Submits every item, or (if they would not all fit in what may wait) none: rejects at once with ResourceExhaustedError. */
  submitAll(items: readonly Item[]): Promise<Outcome[]> {
    const refusal = this.refusal(items.length)
    if (refusal) return Promise.reject(refusal)
    const outcomes = Promise.all(
      items.map((item) => new Promise<Outcome>((resolve, reject) => this.pending.push({ item, resolve, reject }))),
    )
    this.schedule()
    return outcomes
  }

  private refusal(count: number): ResourceExhaustedError | undefined {
    const maxPending = this.options.maxPending ?? limits.pendingWritesMax
    if (this.pending.length + count <= maxPending) return undefined
    return new ResourceExhaustedError(
      'request',
      `the server has ${this.pending.length} ${this.options.itemsName ?? 'writes'} waiting to be written (at most ${maxPending} may wait); retry later`,
    )
  }

  /** Resolves when every item submitted so far has been written. */
  async drain(): Promise<void> {
    while (this.pending.length > 0 || this.inFlight > 0) await new Promise((done) => setTimeout(done, 5))
  }

  private schedule(): void {
    if (this.isScheduled || this.inFlight >= this.options.maxInFlight) return
    this.isScheduled = true
    // setImmediate, not a microtask: items from every I/O callback of this
    // event-loop turn (many streams, many unary calls) join the same batch.
    setImmediate(() => {
      this.isScheduled = false
      void this.flush()
    })
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0 || this.inFlight >= this.options.maxInFlight) return
    const batch = this.pending.splice(0, this.options.maxBatchSize)
    this.inFlight++
    try {
      await this.writeBatch(batch)
    } finally {
      this.inFlight--
      if (this.pending.length > 0) this.schedule()
    }
  }

  private async writeBatch(batch: typeof this.pending): Promise<void> {
    let outcomes: Array<Outcome | Error>
    try {
      outcomes = await this.write(batch.map((entry) => entry.item))
    } catch (error) {
      if (batch.length === 1 || !this.options.isItemError(error)) {
        for (const entry of batch) entry.reject(error)
        return
      }
      await Promise.all(batch.map((entry) => this.writeBatch([entry])))
      return
    }
    batch.forEach((entry, index) => {
      const outcome = outcomes[index]
      if (outcome instanceof Error) entry.reject(outcome)
      else entry.resolve(outcome as Outcome)
    })
  }
}
