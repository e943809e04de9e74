import { describe, expect, it } from 'vitest'
import { useTestEnvironment } from './support/environment.js'

/*
 * The three examples of the product page (shared/seed/real-world-examples.md),
 * with the external services replaced by fakes that count their calls.
 */

const env = useTestEnvironment()

describe('send verification email', () => {
  it('enqueued twice with one idempotency key, it makes one run and sends one email', async () => {
    const sentEmails: string[] = []
    env.stackshift.job<{ userId: string; email: string }>('sendVerificationEmail', async ({ payload, step }) => {
      await step.run('send-email', () => {
        sentEmails.push(payload.email)
        return { messageId: `msg_${payload.userId}` }
      })
    })
    await env.startWorker({ queues: ['emails'] })

    const first = await env.stackshift
      .queue('emails')
      .enqueue('sendVerificationEmail', { userId: 'user_123', email: 'ada@example.com' }, { idempotencyKey: 'verify:user_123' })
    const second = await env.stackshift
      .queue('emails')
      .enqueue('sendVerificationEmail', { userId: 'user_123', email: 'ada@example.com' }, { idempotencyKey: 'verify:user_123' })
    expect(first.deduplicated).toBe(false)
    expect(second).toEqual({ id: first.id, deduplicated: true })

    const done = await env.stackshift.waitForRun(first.id, { timeoutMs: 30_000 })
    expect(done.status).toBe('completed')
    expect(done.steps.map((step) => [step.id, step.status, step.result])).toEqual([
      ['send-email', 'completed', { messageId: 'msg_user_123' }],
    ])

    // The key stays live after the run completed: a late duplicate still finds it.
    const third = await env.stackshift
      .queue('emails')
      .enqueue('sendVerificationEmail', { userId: 'user_123', email: 'ada@example.com' }, { idempotencyKey: 'verify:user_123' })
    expect(third).toEqual({ id: first.id, deduplicated: true })
    expect(sentEmails).toEqual(['ada@example.com'])
  })
})

describe('payment to provisioning workflow', () => {
  it('retries a failing enable-plan step without repeating verify-payment or provision-customer-resources', async () => {
    const calls = { verifyPayment: 0, provisionCustomerResources: 0, enablePaidPlan: 0, sendReceipt: 0 }
    const receipts: string[] = []
    const verifyPayment = (paymentId: string) => {
      calls.verifyPayment++
      return { paymentId, status: 'paid', customerEmail: 'ada@example.com' }
    }
    const provisionCustomerResources = (customerId: string) => {
      calls.provisionCustomerResources++
      return { customerId, database: 'db_1' }
    }
    const enablePaidPlan = (customerId: string) => {
      calls.enablePaidPlan++
      if (calls.enablePaidPlan === 1) throw new Error('billing API timed out')
      return { customerId, plan: 'pro' }
    }
    const sendReceipt = (email: string) => {
      calls.sendReceipt++
      receipts.push(email)
    }

    // As on the product page.
    env.stackshift.job<{ paymentId: string; customerId: string }>('provisionAfterPayment', async ({ payload, step }) => {
      const payment = await step.run('verify-payment', () => verifyPayment(payload.paymentId))

      if (payment.status !== 'paid') {
        throw new Error('Payment is not complete')
      }

      await step.run('provision-customer-resources', () => provisionCustomerResources(payload.customerId))
      await step.run('enable-plan', () => enablePaidPlan(payload.customerId))
      await step.run('send-receipt', () => sendReceipt(payment.customerEmail))

      return { provisioned: true }
    })
    await env.startWorker({ queues: ['billing'], concurrency: 20 })

    const run = await env.stackshift
      .queue('billing')
      .enqueue('provisionAfterPayment', { paymentId: 'pay_1', customerId: 'cus_1' }, { idempotencyKey: 'provision:pay_1' })
    const done = await env.stackshift.waitForRun(run.id, { timeoutMs: 30_000 })

    expect(done.status).toBe('completed')
    expect(done.result).toEqual({ provisioned: true })
    expect(done.attempts).toBe(2)
    expect(calls).toEqual({ verifyPayment: 1, provisionCustomerResources: 1, enablePaidPlan: 2, sendReceipt: 1 })
    expect(receipts).toEqual(['ada@example.com'])
    expect(done.steps.map((step) => [step.id, step.status, step.attempt])).toEqual([
      ['verify-payment', 'completed', 1],
      ['provision-customer-resources', 'completed', 1],
      ['enable-plan', 'completed', 2],
      ['send-receipt', 'completed', 2],
    ])
    expect(done.attemptHistory.map((attempt) => [attempt.attempt, attempt.outcome, attempt.error?.message])).toEqual([
      [1, 'failed', 'billing API timed out'],
      [2, 'completed', undefined],
    ])
  })
})

describe('file processing pipeline', () => {
  it('mark-complete fails once: after the retry the row counter equals the rows exactly, while importRows ran at least once per batch', async () => {
    const batches = Array.from({ length: 10 }, (_, b) => Array.from({ length: 10 + b }, (_, r) => ({ id: `row_${b}_${r}` })))
    const totalRows = batches.reduce((sum, batch) => sum + batch.length, 0)
    const imported: string[][] = []
    let completions = 0
    const downloadFile = (fileId: string) => `csv of ${fileId}`
    const parseCsv = (file: string) => ({ file, batches, totalRows })
    const importRows = (batch: Array<{ id: string }>) => {
      imported.push(batch.map((row) => row.id))
      return Promise.resolve()
    }
    const markFileComplete = (fileId: string) => {
      completions++
      if (completions === 1) throw new Error(`storage unavailable while marking ${fileId}`)
    }

    const { stackshift } = env
    stackshift.job<{ fileId: string }>('processUpload', async ({ payload, step, state }) => {
      const file = await step.run('download-file', () => downloadFile(payload.fileId))
      const parsed = await step.run('parse-file', () => parseCsv(file))

      for (const batch of parsed.batches) {
        await importRows(batch)
        await state.increment(`files:${payload.fileId}:rows`, batch.length)
      }

      await step.run('mark-complete', () => markFileComplete(payload.fileId))

      return { rows: parsed.totalRows }
    })
    await env.startWorker({ queues: ['uploads'] })

    const run = await stackshift.queue('uploads').enqueue('processUpload', { fileId: 'f_1' })
    const done = await stackshift.waitForRun(run.id, { timeoutMs: 30_000 })

    expect(done.status).toBe('completed')
    expect(done.result).toEqual({ rows: totalRows })
    expect(done.attempts).toBe(2)
    // Exactly once: the retry got each recorded increment back instead of adding again.
    expect(await stackshift.state.get('files:f_1:rows')).toBe(totalRows)
    // At least once: code outside steps ran again on the retry.
    expect(imported).toHaveLength(20)
    expect(imported.slice(10)).toEqual(imported.slice(0, 10))
    const increments = done.steps.filter((step) => step.kind === 'state')
    expect(increments.map((step) => step.id)).toEqual([
      'state.increment:files:f_1:rows',
      ...Array.from({ length: 9 }, (_, n) => `state.increment:files:f_1:rows:${n + 1}`),
    ])
    expect(increments.every((step) => step.attempt === 1)).toBe(true)
  })
})
