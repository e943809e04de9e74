import { expect, it } from 'vitest'
import { ChildScript } from './support/processes.js'
import { useTestEnvironment } from './support/environment.js'

const env = useTestEnvironment()

it('a worker killed with SIGKILL mid-step: the run is redelivered after the lease expires and completes on another worker, without repeating completed steps', async () => {
  const crashing = new ChildScript('test/fixtures/crash-worker.ts', { STACKSHIFT_ADDRESS: env.server.address })
  try {
    await crashing.waitForLine(/^READY$/)
    const run = await env.stackshift.queue('imports').enqueue('importOrders', { batch: 7 })
    await crashing.waitForLine(new RegExp(`^BLOCKED ${run.id}$`))
    await crashing.kill('SIGKILL')

    const effects = { 'fetch-orders': 0, 'write-orders': 0, 'notify-team': 0 }
    env.stackshift.job('importOrders', async ({ step }) => {
      const orders = await step.run('fetch-orders', () => {
        effects['fetch-orders']++
        return ['never used']
      })
      await step.run('write-orders', () => {
        effects['write-orders']++
        return orders.length
      })
      await step.run('notify-team', () => {
        effects['notify-team']++
      })
      return { imported: orders }
    })
    const survivor = env.stackshift.worker({ queues: ['imports'] })
    await survivor.start()
    try {
      const done = await env.stackshift.waitForRun(run.id, { timeoutMs: 30_000 })
      expect(done.status).toBe('completed')
      // The memo from the first attempt came back: the survivor never fetched.
      expect(done.result).toEqual({ imported: ['order_1', 'order_2'] })
      const crashedEffects = crashing.lines.filter((line) => line.startsWith('EFFECT ')).map((line) => line.split(' ')[1])
      expect(crashedEffects).toEqual(['fetch-orders', 'write-orders'])
      expect(effects).toEqual({ 'fetch-orders': 0, 'write-orders': 1, 'notify-team': 1 })
      expect(done.attemptHistory.map((a) => [a.attempt, a.outcome])).toEqual([
        [1, 'lease_expired'],
        [2, 'completed'],
      ])
      expect(done.steps.map((s) => [s.id, s.attempt])).toEqual([
        ['fetch-orders', 1],
        ['write-orders', 2],
        ['notify-team', 2],
      ])
    } finally {
      await survivor.stop()
    }
  } finally {
    await crashing.kill('SIGKILL')
  }
})
