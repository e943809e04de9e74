import { context, ROOT_CONTEXT } from '@opentelemetry/api'
import type { Logger } from '../logger.js'

/**
 * Runs a maintenance pass over and over. Each pass returns how long to sleep
 * before the next; `wakeWithin` shortens a sleep. A failing pass is logged and
 * retried after the default interval. `stop` waits for the pass in progress.
 */
export class PeriodicTask {
  private timer: NodeJS.Timeout | undefined
  private wakeAt = Number.POSITIVE_INFINITY
  private running: Promise<void> | undefined
  private isStopped = true

  constructor(
    private readonly options: {
      name: string
      logger: Logger
      intervalMs: number
      /** One pass. Returns the delay before the next, or undefined for `intervalMs`. */
      run: () => Promise<number | undefined>
    },
  ) {}

  start(): void {
    this.isStopped = false
    this.sleep(0)
  }

  /** Make sure a pass starts within `ms`. */
  wakeWithin(ms: number): void {
    if (this.isStopped || Date.now() + ms >= this.wakeAt) return
    this.sleep(ms)
  }

  async stop(): Promise<void> {
    this.isStopped = true
    clearTimeout(this.timer)
    await this.running
  }

  private sleep(ms: number): void {
    clearTimeout(this.timer)
    this.wakeAt = Date.now() + ms
    this.timer = setTimeout(() => this.pass(), ms)
    this.timer.unref()
  }

  private pass(): void {
    if (this.running || this.isStopped) {
      // A pass is in progress; it will schedule the next one. Wake right after it.
      this.wakeAt = Date.now()
      return
    }
    this.wakeAt = Number.POSITIVE_INFINITY
    // A pass is nobody's request: it runs outside the trace of whatever woke it.
    this.running = context
      .with(ROOT_CONTEXT, () => this.options.run())
      .then(
        (delayMs) => delayMs ?? this.options.intervalMs,
        (error: unknown) => {
          this.options.logger.error({ err: error, task: this.options.name }, 'maintenance pass failed')
          return this.options.intervalMs
        },
      )
      .then((delayMs) => {
        this.running = undefined
        if (this.isStopped) return
        // A wake that arrived during the pass asked for a pass sooner than planned.
        this.sleep(Math.max(0, Math.min(delayMs, this.wakeAt - Date.now())))
      })
  }
}
