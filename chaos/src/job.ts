import { randomUUID } from 'node:crypto'
import { RunSuspendedError, type StackShift } from '@stackshift/sdk'
import type { Ledger } from './ledger.js'

/*
 * The job every chaos run executes: steps with side effects recorded in the
 * ledger, a State Store counter incremented inside the run, a sleep, and a
 * wait for an event the driver sends.
 */

export const queueName = 'chaos'
export const jobName = 'chaos.order'
export const eventName = 'chaos.approved'
/** The steps with side effects, in order. */
export const effectSteps = ['reserve', 'charge', 'ship'] as const
/** What the two increments of a run add up to. */
export const counterTotal = 3

/** The counter a run increments: one per run, so its expected value is exact. */
export const counterKey = (key: string): string => `chaos:counter:${key}`

export interface ChaosPayload {
  /** The driver's name for the run: its idempotency key, its event's match, its counter. */
  key: string
  /** How long each effect step takes after recording its side effect, ms (charge is the long one, where kills land). */
  stepMs: { reserve: number; charge: number; ship: number }
  sleepMs: number
}

export interface ChaosResult {
  /** The nonce each effect step returned, as this execution saw it (from the step or from the memo). */
  nonces: Record<(typeof effectSteps)[number], string>
  /** The counter's value after the run's last increment. */
  counter: number
  /** The id of the event the wait returned; null if it timed out. */
  eventId: string | null
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Runs one call of the handler; if it throws (other than to suspend), says
 * which call and what error on stderr, as a JSON line the harness counts,
 * then rethrows: the attempt fails as it would have.
 */
async function traced<T>(call: string, run: { id: string; attempt: number }, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (error) {
    if (!(error instanceof RunSuspendedError)) {
      const name = error instanceof Error ? error.name : typeof error
      const message = error instanceof Error ? error.message : String(error)
      process.stderr.write(
        JSON.stringify({ msg: 'chaos handler error', runId: run.id, attempt: run.attempt, call, error: name, message }) + '\n',
      )
    }
    throw error
  }
}

/**
 * Says on stdout that a step's side effect was recorded (`start`) and that
 * the step's result was stored or its attempt ended (`end`): the harness
 * counts the steps in flight, to strike a worker in the middle of one.
 */
function reportStep(phase: 'start' | 'end', run: { id: string; attempt: number }, stepId: string): void {
  process.stdout.write(JSON.stringify({ msg: 'chaos step', phase, runId: run.id, attempt: run.attempt, stepId }) + '\n')
}

export function registerChaosJob(stackshift: StackShift, ledger: Ledger, workerId: string): void {
  stackshift.job<ChaosPayload, ChaosResult>(jobName, async ({ payload, step, state, run }) => {
    // A side effect first, then the work: a process killed during the work leaves the side effect behind.
    const effect = async (stepId: (typeof effectSteps)[number]) => {
      // Set inside the step, read after it: an object, so the reads see the write.
      const progress = { isStarted: false }
      try {
        return await traced('step.run', run, () =>
          step.run(stepId, async () => {
            const nonce = randomUUID()
            await ledger.record({ runId: run.id, stepId, attempt: run.attempt, workerId, nonce })
            progress.isStarted = true
            reportStep('start', run, stepId)
            await sleep(payload.stepMs[stepId])
            return { nonce }
          }),
        )
      } finally {
        if (progress.isStarted) reportStep('end', run, stepId)
      }
    }
    const reserve = await effect('reserve')
    await traced('state.increment', run, () => state.increment(counterKey(payload.key), 1))
    const charge = await effect('charge')
    await traced('step.sleep', run, () => step.sleep('cool-off', payload.sleepMs))
    // lookback: the driver may send the event before the run reaches the wait.
    const approval = await traced('step.waitForEvent', run, () =>
      step.waitForEvent('approval', { event: eventName, match: { key: payload.key }, timeout: '30m', lookback: '1h' }),
    )
    const counter = await traced('state.increment', run, () => state.increment(counterKey(payload.key), 2))
    const ship = await effect('ship')
    return { nonces: { reserve: reserve.nonce, charge: charge.nonce, ship: ship.nonce }, counter, eventId: approval?.id ?? null }
  })
}
