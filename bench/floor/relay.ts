/**
 * The transport floor of W2: a process with the hops of a StackShift enqueue
 * and nothing else. A unary call stores its bytes with one committed INSERT
 * (fsync on), then pushes them to every listening worker stream and answers.
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
  send: { path: '/bench.Relay/Send', requestStream: false, responseStream: false, ...bytes },
  listen: { path: '/bench.Relay/Listen', requestStream: false, responseStream: true, ...bytes },
} satisfies ServiceDefinition

export const relayTable = 'relay_events'
