/**
 * Runs the W2 transport floor's relay (see relay.ts) on DATABASE_URL, with the
 * StackShift server's pool size; prints {"event":"listening","port":n}.
 */
import { Server, ServerCredentials, type ServerDuplexStream, type ServerWritableStream } from '@grpc/grpc-js'
import pg from 'pg'
import { relayService, relayTable } from './relay.js'

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.STACKSHIFT_DB_POOL_SIZE ?? 10) })
await pool.query(`CREATE TABLE IF NOT EXISTS ${relayTable} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload bytea NOT NULL)`)
const listeners = new Set<ServerWritableStream<Buffer, Buffer>>()

const server = new Server()
server.addService(relayService, {
  send: (call: ServerDuplexStream<Buffer, Buffer>) => {
    call.on('data', (message: Buffer) => {
      const payload = message.subarray(4)
      pool.query({ name: 'relay_insert', text: `INSERT INTO ${relayTable} (payload) VALUES ($1)`, values: [payload] }).then(
        () => {
          for (const listener of listeners) listener.write(payload)
          call.write(message.subarray(0, 4))
        },
        (error: unknown) => call.destroy(error instanceof Error ? error : new Error(String(error))),
      )
    })
    call.on('end', () => call.end())
  },
  listen: (call: ServerWritableStream<Buffer, Buffer>) => {
    listeners.add(call)
    call.on('cancelled', () => listeners.delete(call))
  },
})
const port = await new Promise<number>((resolve, reject) =>
  server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
)
console.log(JSON.stringify({ event: 'listening', port }))
process.on('SIGTERM', () => {
  server.forceShutdown()
  void pool.end().then(() => process.exit(0))
})
