/**
 * The transport floor of W2: a process with the hops of a StackShift enqueue
 * and nothing else. Each message on a client's Send stream (a 4-byte id, then
 * the payload) stores its payload with one committed INSERT (fsync on), then
 * the payload is pushed to every listening worker stream and the id goes back
 * on the Send stream, as EnqueueStream answers an enqueue.
 * Its latency is what any job service with a gRPC hop in front of PostgreSQL
 * and a stream to the worker takes at least on this machine.
 */
import { type ServiceDefinition } from '@grpc/grpc-js'

const bytes = {
  requestSerialize: (message: Buffer) => message,
  requestDeserialize: (message: Buffer) => message,
  responseSerialize: (message: Buffer) => message,
  responseDeserialize: (message: Buffer) => message,
}

export const relayService = {
  send: { path: '/bench.Relay/Send', requestStream: true, responseStream: true, ...bytes },
  listen: { path: '/bench.Relay/Listen', requestStream: false, responseStream: true, ...bytes },
} satisfies ServiceDefinition

export const relayTable = 'relay_events'
