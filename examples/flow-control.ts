import { StackShift } from '@stackshift/sdk'

const stackshift = new StackShift({ address: process.env.STACKSHIFT_ADDRESS ?? 'localhost:50051' })

// A stand-in for a partner API that allows 10 calls a second.
const syncWithCrm = (customerId: string) => ({ customerId, synced: true })

stackshift.job<{ customerId: string }>('syncCustomer', {
  concurrency: { limit: 2, key: 'customerId' },              // at most 2 running per customer
  rateLimit: { limit: 10, period: '1s' },                     // at most 10 starts a second, all customers
  debounce: { period: '1s', key: 'customerId' },              // a burst of enqueues per customer becomes one run
  fairness: { key: 'customerId' },                            // customers served round robin
}, async ({ payload, step }) => {
  return step.run('sync', () => syncWithCrm(payload.customerId))
})
const worker = stackshift.worker({ queues: ['crm'], concurrency: 20 })
await worker.start() // declares the policies; the server enforces them for every worker

const queue = stackshift.queue('crm')
const runs = []
for (const customerId of ['acme', 'acme', 'acme', 'globex']) runs.push(await queue.enqueue('syncCustomer', { customerId }))
const ids = [...new Set(runs.map((run) => run.id))] // acme's three enqueues became one run
const done = await Promise.all(ids.map((id) => stackshift.waitForRun(id, { timeoutMs: 30_000 })))
console.log(done.map((run) => `${run.concurrencyKey} ${run.status}`).join(', ')) // acme completed, globex completed

// Limits change at run time, on every server, without a restart:
await stackshift.configureJob('syncCustomer', { concurrency: { limit: 5, key: 'customerId' }, fairness: { key: 'customerId' } })
await stackshift.queue('crm').configure({ concurrency: 50 }) // at most 50 runs of the queue at once

await worker.stop()
stackshift.close()
