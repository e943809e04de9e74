import { type Client, type ClientDuplexStream, type ClientReadableStream, credentials, makeGenericClientConstructor } from '@grpc/grpc-js'
import { replaceAsyncResourceBind } from '@stackshift/sdk'
import { relayService } from '../floor/relay.js'
import type { BenchConfig, ProbeHandler, ProbePayload, SystemAdapter } from './adapter.js'

interface RelayClient extends Client {
  send(): ClientDuplexStream<Buffer, Buffer>
  listen(request: Buffer): ClientReadableStream<Buffer>
}

/**
 * Not a job system: the W2 transport floor (floor/relay.ts), measured by the
 * same harness as the systems. Only W2 runs it.
 */
export function createTransportFloorAdapter(config: BenchConfig): SystemAdapter {
  // The same client-side tuning the StackShift adapter opts in to, so the floor stays the least the path takes.
  replaceAsyncResourceBind()
  const RelayClient = makeGenericClientConstructor(relayService, 'Relay')
  const client = new RelayClient(config.stackshiftAddress!, credentials.createInsecure()) as unknown as RelayClient
  let listener: ClientReadableStream<Buffer> | undefined
  // One Send stream for every enqueue, as a StackShift client has one EnqueueStream.
  const sender = client.send()
  const answers = new Map<number, () => void>()
  let nextId = 0
  sender.on('data', (id: Buffer) => {
    const answered = answers.get(id.readUInt32BE(0))
    answers.delete(id.readUInt32BE(0))
    answered?.()
  })
  sender.on('error', () => {})
  const onlyW2 = () => Promise.reject(new Error('the transport floor only runs W2'))

  return {
    // The relay created its table before this process started.
    async install() {},
    preloadHistory: onlyW2,
    enqueueBulk: onlyW2,
    async enqueueOne(_job, payload) {
      const id = nextId++ >>> 0
      const message = Buffer.concat([Buffer.alloc(4), Buffer.from(JSON.stringify(payload))])
      message.writeUInt32BE(id, 0)
      await new Promise<void>((resolve) => {
        answers.set(id, resolve)
        sender.write(message)
      })
    },
    async startWorker(_job, handler: ProbeHandler) {
      listener = client.listen(Buffer.alloc(0))
      listener.on('data', (message: Buffer) => handler(JSON.parse(message.toString('utf8')) as ProbePayload))
      listener.on('error', () => {})
      // Connected before the workload starts its one-second settle and its first arrival.
      await new Promise((resolve) => client.waitForReady(Date.now() + 10_000, resolve))
    },
    startThreeStepWorker: onlyW2,
    enqueueThreeStepJobs: onlyW2,
    unfinished: onlyW2,
    stopWorker() {
      listener?.cancel()
      listener = undefined
      return Promise.resolve()
    },
    close() {
      sender.end()
      client.close()
      return Promise.resolve()
    },
  }
}
