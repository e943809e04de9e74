import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { type Logger, StackShift, type StackShiftOptions, UnimplementedError } from '@stackshift/sdk'
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest'

/*
 * The SDK's API key and TLS options, against a bare grpc-js server with
 * StackShift's three services and no implementations: every call is answered
 * UNIMPLEMENTED, after an interceptor has recorded the authorization metadata
 * it arrived with. (The StackShift server's own key checking is tested where
 * it is built.)
 */

const protoDir = fileURLToPath(new URL('../proto', import.meta.url))
const definition = protoLoader.loadSync(
  ['stackshift/jobs/v1/run_service.proto', 'stackshift/jobs/v1/worker_service.proto', 'stackshift/jobs/v1/state_service.proto'],
  { includeDirs: [protoDir] },
)

/** One call the server received: its method and the values of its `authorization` metadata. */
interface ReceivedCall {
  method: string
  authorization: grpc.MetadataValue[]
}

const received: ReceivedCall[] = []
const recordAuthorization: grpc.ServerInterceptor = (method, call) =>
  new grpc.ServerInterceptingCall(call, {
    start: (next) => {
      next({
        onReceiveMetadata: (metadata, nextMetadata) => {
          received.push({ method: method.path.slice(method.path.lastIndexOf('.') + 1), authorization: metadata.get('authorization') })
          nextMetadata(metadata)
        },
      })
    },
  })

let server: grpc.Server
let address: string
const clients: StackShift[] = []

beforeAll(async () => {
  server = new grpc.Server({ interceptors: [recordAuthorization] })
  for (const service of ['RunService', 'WorkerService', 'StateService'])
    server.addService(definition[`stackshift.jobs.v1.${service}`] as grpc.ServiceDefinition, {})
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  )
  address = `127.0.0.1:${port}`
})

afterEach(() => {
  received.length = 0
  vi.unstubAllEnvs()
})

afterAll(() => {
  for (const client of clients) client.close()
  server.forceShutdown()
})

/** What the SDK logged (the refused worker); kept off stderr. */
const logged: string[] = []
const logger: Logger = {
  debug: () => {},
  info: () => {},
  warn: (message) => logged.push(message),
  error: (message) => logged.push(message),
}

function client(options: Omit<StackShiftOptions, 'address'> = {}): StackShift {
  const made = new StackShift({ address, callTimeoutMs: 5000, logger, ...options })
  clients.push(made)
  return made
}

/** Makes a unary call; the server answers UNIMPLEMENTED, having recorded it. */
async function getRun(stackshift: StackShift): Promise<void> {
  await expect(stackshift.getRun('0190b4a8-0000-7000-8000-000000000000')).rejects.toBeInstanceOf(UnimplementedError)
}

it('the apiKey goes with every unary call and every stream as an authorization bearer token', async () => {
  const stackshift = client({ apiKey: 'sk_live_0123456789abcdef' })
  await getRun(stackshift)
  // On the shared stream first; UNIMPLEMENTED there makes the SDK try the unary call.
  await expect(stackshift.queue('emails').enqueue('send', {})).rejects.toBeInstanceOf(UnimplementedError)
  await expect(stackshift.state.get('counter')).rejects.toBeInstanceOf(UnimplementedError)
  stackshift.job('send', () => 'sent')
  await expect(stackshift.worker({ queues: ['emails'], connectTimeoutMs: 5000 }).start()).rejects.toBeInstanceOf(UnimplementedError)
  expect(logged).toEqual(['the server refused this worker'])

  expect(received.map((call) => call.method)).toEqual([
    'RunService/GetRun',
    'RunService/EnqueueStream',
    'RunService/Enqueue',
    'StateService/Get',
    'WorkerService/Connect',
  ])
  for (const call of received) expect(call.authorization).toEqual(['Bearer sk_live_0123456789abcdef'])
})

it('without the apiKey option the key comes from STACKSHIFT_API_KEY; the option wins over it, and "" sends none', async () => {
  vi.stubEnv('STACKSHIFT_API_KEY', 'sk_from_environment')
  await getRun(client())
  await getRun(client({ apiKey: 'sk_from_option' }))
  await getRun(client({ apiKey: '' }))
  expect(received.map((call) => call.authorization)).toEqual([['Bearer sk_from_environment'], ['Bearer sk_from_option'], []])
})

it('with neither the option nor the variable, no authorization is sent', async () => {
  vi.stubEnv('STACKSHIFT_API_KEY', '')
  await getRun(client())
  expect(received).toEqual([{ method: 'RunService/GetRun', authorization: [] }])
})

it('the apiKey is sent over channel credentials given as `credentials` too', async () => {
  await getRun(client({ apiKey: 'sk_with_credentials', credentials: grpc.credentials.createInsecure() }))
  expect(received).toEqual([{ method: 'RunService/GetRun', authorization: ['Bearer sk_with_credentials'] }])
})

it('an API key that cannot be a header value is refused when the client is made, naming where it came from', () => {
  expect(() => new StackShift({ address, apiKey: 'two words' })).toThrow(/^StackShift options\.apiKey must be visible ASCII/)
  expect(() => new StackShift({ address, apiKey: 'sk_live\n' })).toThrow(TypeError)
  vi.stubEnv('STACKSHIFT_API_KEY', 'sk_from_a_file\n')
  expect(() => new StackShift({ address })).toThrow(/^StackShift STACKSHIFT_API_KEY must be visible ASCII/)
  expect(received).toEqual([])
})

it('TLS options that cannot work are refused when the client is made', () => {
  const pem = '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n'
  expect(() => new StackShift({ address, tls: true, credentials: grpc.credentials.createInsecure() })).toThrow(
    'StackShift options.credentials and options.tls cannot both be given',
  )
  expect(() => new StackShift({ address, tls: { cert: pem } })).toThrow('StackShift options.tls.cert and options.tls.key go together')
  expect(() => new StackShift({ address, tls: { key: pem } })).toThrow('StackShift options.tls.cert and options.tls.key go together')
  expect(() => new StackShift({ address, tls: { ca: '/etc/ssl/private-ca.pem' } })).toThrow(
    /^StackShift options\.tls\.ca holds no PEM certificate/,
  )
  expect(() => new StackShift({ address, tls: { ca: pem } })).toThrow(/^StackShift options\.tls\.ca holds no PEM certificate/)
  expect(() => new StackShift({ address, tls: { cert: pem, key: pem } })).toThrow(/^StackShift options\.tls: /)
  expect(() => new StackShift({ address, tls: { ca: 42 as unknown as string } })).toThrow(
    'StackShift options.tls.ca must be PEM text or a Buffer',
  )
  // `tls: false` says plain text, as leaving it out does: no conflict with `credentials`.
  client({ tls: false, credentials: grpc.credentials.createInsecure() }).close()
})
