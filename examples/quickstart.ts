import { NonRetriableError, StackShift } from '@stackshift/sdk'

const stackshift = new StackShift({ address: process.env.STACKSHIFT_ADDRESS ?? 'localhost:50051' })

// Stand-ins for your own services.
const verifyPayment = (paymentId: string) => ({ paymentId, status: 'paid' })
const provisionCustomerResources = (customerId: string) => ({ customerId, database: 'db_1' })

stackshift.job<{ paymentId: string; customerId: string }>('provisionAfterPayment', async ({ payload, step }) => {
  const payment = await step.run('verify-payment', () => verifyPayment(payload.paymentId))
  if (payment.status !== 'paid') throw new NonRetriableError('Payment is not complete')
  await step.run('provision-customer-resources', () => provisionCustomerResources(payload.customerId))
  return { provisioned: true }
})
const worker = stackshift.worker({ queues: ['billing'], concurrency: 20 })
await worker.start() // resolves once connected; runs until stop()

const run = await stackshift.queue('billing').enqueue('provisionAfterPayment',
  { paymentId: 'pay_1', customerId: 'cus_1' }, { idempotencyKey: 'provision:pay_1' })
const done = await stackshift.waitForRun(run.id, { timeoutMs: 30_000 })
console.log(done.status, done.result, done.attempts) // completed { provisioned: true } 1

await worker.stop() // graceful: finishes or hands back in-flight work
stackshift.close()
