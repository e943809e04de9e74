/**
 * A chaos worker process: one SDK worker on one server, executing the chaos
 * job (job.ts) and recording its side effects in the ledger. Prints `ready`
 * once connected. Started (and killed, stopped, continued) by the harness.
 *
 * Environment: CHAOS_ADDRESS (host:port of its server), CHAOS_LEDGER_URL,
 * CHAOS_WORKER_ID, CHAOS_CONCURRENCY.
 */
import { StackShift, jsonLogger } from '@stackshift/sdk'
import { registerChaosJob, queueName } from './job.js'
import { Ledger } from './ledger.js'

function required(name: string): string {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}

const workerId = required('CHAOS_WORKER_ID')
const ledger = new Ledger(required('CHAOS_LEDGER_URL'))
const stackshift = new StackShift({ address: required('CHAOS_ADDRESS'), logger: jsonLogger('info') })
registerChaosJob(stackshift, ledger, workerId)
const worker = stackshift.worker({
  queues: [queueName],
  concurrency: Number(process.env.CHAOS_CONCURRENCY ?? 8),
  workerId,
  connectTimeoutMs: 10 * 60_000,
})
await worker.start()
process.stdout.write('ready\n')

process.once('SIGTERM', () => {
  void worker
    .stop({ graceMs: 5000 })
    .then(() => ledger.close())
    .then(() => {
      stackshift.close()
      process.exit(0)
    })
})
