import { Metadata } from '@grpc/grpc-js'
import { EventEmitter } from 'node:events'
import { expect, it } from 'vitest'
import { createLogger } from '../../server/src/logger.js'
import { unaryHandler } from '../../server/src/rpc/error-map.js'

/** A grpc-js unary call as the handler sees it: a request, and 'cancelled' when its stream closes. */
function fakeCall() {
  return Object.assign(new EventEmitter(), { request: {}, metadata: new Metadata() })
}

const logger = createLogger('silent')

it("a unary handler's signal aborts when its call is cancelled before the answer", async () => {
  const call = fakeCall()
  let signal: AbortSignal | undefined
  const answered = new Promise<unknown>((resolve) =>
    unaryHandler(logger, (_request, handlerSignal) => {
      signal = handlerSignal
      return new Promise((done) => handlerSignal.addEventListener('abort', () => done('gave up')))
    })(call, (error, response) => resolve(error ?? response)),
  )
  call.emit('cancelled')
  expect(await answered).toBe('gave up')
  expect(signal!.aborted).toBe(true)
})

it("a call that closes after its answer leaves the handler's signal alone", async () => {
  const call = fakeCall()
  let signal: AbortSignal | undefined
  const answered = new Promise<unknown>((resolve) =>
    unaryHandler(logger, (_request, handlerSignal) => {
      signal = handlerSignal
      return Promise.resolve('done')
    })(call, (error, response) => resolve(error ?? response)),
  )
  expect(await answered).toBe('done')
  // grpc-js reports every closed call as cancelled, answered ones included.
  call.emit('cancelled')
  expect(signal!.aborted).toBe(false)
})
