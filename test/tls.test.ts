import { copyFile, mkdir, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { request as requestHttp } from 'node:http'
import { request as requestHttps } from 'node:https'
import { connect as connectTls } from 'node:tls'
import { StackShift, type StackShiftOptions, UnavailableError } from '@stackshift/sdk'
import { ConfigError, type Logger, type ServerConfig, createLogger } from '@stackshift/server'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type IssuedCertificate, TestCertificates } from './support/certificates.js'
import { connect, createTestDatabase } from './support/database.js'
import { type TestServer, startTestServer } from './support/server.js'
import { waitUntil } from './support/wait-until.js'

let certificates: TestCertificates
/** The CA that signs the server's certificate and the accepted client certificates. */
let ca: IssuedCertificate
/** A CA the servers know nothing of. */
let otherCa: IssuedCertificate
let serverCertificate: IssuedCertificate
let clientCertificate: IssuedCertificate
let foreignClientCertificate: IssuedCertificate
let databaseUrl: string
let db: pg.Client
const servers: TestServer[] = []
const clients: StackShift[] = []

beforeAll(async () => {
  certificates = await TestCertificates.create()
  ca = await certificates.authority('test-ca')
  otherCa = await certificates.authority('other-ca')
  serverCertificate = await certificates.issue(ca, 'server-1', 'server')
  clientCertificate = await certificates.issue(ca, 'client-1', 'client')
  foreignClientCertificate = await certificates.issue(otherCa, 'foreign-client', 'client')
  databaseUrl = await createTestDatabase()
  db = await connect(databaseUrl)
})

afterAll(async () => {
  for (const client of clients) client.close()
  await Promise.all(servers.map((server) => server.stop()))
  // beforeAll may have failed before making these.
  const made: { db?: pg.Client; certificates?: TestCertificates } = { db, certificates }
  await made.db?.end()
  await made.certificates?.remove()
})

async function startServer(overrides: Partial<ServerConfig>, logger?: Logger): Promise<TestServer> {
  const server = await startTestServer(databaseUrl, overrides, logger)
  servers.push(server)
  return server
}

/** An SDK client that gives up on an unreachable server quickly. */
function client(address: string, options: Omit<StackShiftOptions, 'address'> = {}): StackShift {
  const made = new StackShift({ address, callTimeoutMs: 5000, ...options })
  clients.push(made)
  return made
}

/** The runs stored for `queue`, oldest first. */
async function storedRuns(queue: string): Promise<Array<{ job: string; status: string; result: unknown }>> {
  const { rows } = await db.query<{ job: string; status: string; result: unknown }>(
    'SELECT job, status::text AS status, result FROM stackshift.runs WHERE queue = $1 ORDER BY id',
    [queue],
  )
  return rows
}

/** Enqueues a job on `queue`, runs it on a worker of the same client, and returns the finished run's status and result. */
async function runOneJob(stackshift: StackShift, queue: string): Promise<{ status: string; result: unknown }> {
  stackshift.job<{ name: string }>('greet', ({ payload }) => ({ greeting: `hello ${payload.name}` }))
  const worker = stackshift.worker({ queues: [queue], jobs: ['greet'] })
  await worker.start()
  try {
    const run = await stackshift.queue(queue).enqueue('greet', { name: 'ada' })
    const done = await stackshift.waitForRun(run.id, { timeoutMs: 15_000 })
    return { status: done.status, result: done.result }
  } finally {
    await worker.stop()
  }
}

/** The common name of the certificate the server presents to a new TLS connection (ALPN h2, as gRPC clients connect). */
function servedCertificateName(port: number, trusted: Buffer[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({ host: '127.0.0.1', port, ca: trusted, ALPNProtocols: ['h2'] }, () => {
      const { CN } = socket.getPeerCertificate().subject
      socket.destroy()
      resolve([CN ?? []].flat().join(', '))
    })
    socket.once('error', reject)
  })
}

describe('a server with TLS', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startServer({ tlsCertFile: serverCertificate.certFile, tlsKeyFile: serverCertificate.keyFile })
  })

  it('refuses a client in plain text, and stores nothing it sent', async () => {
    const plain = client(server.address)
    await expect(plain.queue('tls-plain').enqueueMany([{ job: 'greet', payload: {} }])).rejects.toBeInstanceOf(UnavailableError)
    expect(await storedRuns('tls-plain')).toEqual([])
  })

  it('refuses a client that does not trust its certificate authority (tls: true trusts only the default ones)', async () => {
    const untrusting = client(server.address, { tls: true })
    await expect(untrusting.queue('tls-untrusted').enqueueMany([{ job: 'greet', payload: {} }])).rejects.toBeInstanceOf(UnavailableError)
    expect(await storedRuns('tls-untrusted')).toEqual([])
  })

  it('serves the web console over HTTPS with the same certificate, and not in plain HTTP', async () => {
    const port = server.server.consolePort!
    expect(await consoleGet(port, { ca: ca.cert })).toEqual({ status: 200, body: '{"traceUrl":null}' })
    expect(await consoleGet(port, {})).toMatchObject({ error: expect.any(String) as unknown })
    expect(await plainGet(port)).toMatchObject({ error: expect.any(String) as unknown })
  })

  it('serves a client that trusts its CA: an enqueue over TLS is completed by a worker over TLS', async () => {
    const trusting = client(server.address, { tls: { ca: serverCertificateAuthorityPem() } })
    expect(await runOneJob(trusting, 'tls-trusted')).toEqual({ status: 'completed', result: { greeting: 'hello ada' } })
    expect(await storedRuns('tls-trusted')).toEqual([{ job: 'greet', status: 'completed', result: { greeting: 'hello ada' } }])
  })
})

/** GETs the console's /config.json over HTTPS; the status and body, or why the request failed. */
function consoleGet(
  port: number,
  tls: { ca?: Buffer; cert?: Buffer; key?: Buffer },
): Promise<{ status?: number; body?: string; error?: string }> {
  return new Promise((resolve) => {
    const request = requestHttps({ host: '127.0.0.1', port, path: '/config.json', servername: 'localhost', ...tls }, (response) => {
      let body = ''
      response.on('data', (chunk: Buffer) => (body += chunk.toString()))
      response.on('end', () => resolve({ status: response.statusCode, body }))
    })
    request.on('error', (error) => resolve({ error: error.message }))
    request.end()
  })
}

/** The same in plain HTTP. */
function plainGet(port: number): Promise<{ status?: number; error?: string }> {
  return new Promise((resolve) => {
    const request = requestHttp({ host: '127.0.0.1', port, path: '/config.json', timeout: 5000 }, (response) => {
      response.resume()
      resolve({ status: response.statusCode })
    })
    request.on('timeout', () => request.destroy(new Error('no answer')))
    request.on('error', (error) => resolve({ error: error.message }))
    request.end()
  })
}

/** The CA as PEM text, as an application would read it from a file or secret (the option takes strings or Buffers). */
const serverCertificateAuthorityPem = () => ca.cert.toString('utf8')

/** A server logger whose lines are kept, parsed. */
function capturedLog(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const capture = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    },
  })
  return { logger: createLogger('info', capture), lines }
}

describe('a server with mTLS', () => {
  let server: TestServer
  const { logger, lines: logLines } = capturedLog()

  beforeAll(async () => {
    server = await startServer(
      { tlsCertFile: serverCertificate.certFile, tlsKeyFile: serverCertificate.keyFile, tlsClientCaFile: ca.certFile },
      logger,
    )
  })

  it('says so in its log at start', () => {
    expect(logLines).toContainEqual(
      expect.objectContaining({ msg: 'TLS on, with client certificates required (mTLS)', subject: 'CN=server-1', caFile: ca.certFile }),
    )
    expect(logLines).toContainEqual(expect.objectContaining({ msg: 'StackShift server listening', tls: 'mtls' }))
  })

  it('refuses a client without a certificate, and stores nothing it sent', async () => {
    const anonymous = client(server.address, { tls: { ca: ca.cert } })
    await expect(anonymous.queue('mtls-anonymous').enqueueMany([{ job: 'greet', payload: {} }])).rejects.toBeInstanceOf(UnavailableError)
    expect(await storedRuns('mtls-anonymous')).toEqual([])
  })

  it('refuses a client whose certificate another CA signed, and stores nothing it sent', async () => {
    const foreign = client(server.address, {
      tls: { ca: ca.cert, cert: foreignClientCertificate.cert, key: foreignClientCertificate.key },
    })
    await expect(foreign.queue('mtls-foreign').enqueueMany([{ job: 'greet', payload: {} }])).rejects.toBeInstanceOf(UnavailableError)
    expect(await storedRuns('mtls-foreign')).toEqual([])
  })

  it('serves the web console only to a client with a certificate the client CA signed', async () => {
    const port = server.server.consolePort!
    expect(await consoleGet(port, { ca: ca.cert })).toMatchObject({ error: expect.any(String) as unknown })
    expect(await consoleGet(port, { ca: ca.cert, cert: foreignClientCertificate.cert, key: foreignClientCertificate.key })).toMatchObject({
      error: expect.any(String) as unknown,
    })
    expect(await consoleGet(port, { ca: ca.cert, cert: clientCertificate.cert, key: clientCertificate.key })).toMatchObject({ status: 200 })
  })

  it('serves a client whose certificate the client CA signed: an enqueue is completed by a worker, both with that certificate', async () => {
    const known = client(server.address, { tls: { ca: ca.cert, cert: clientCertificate.cert, key: clientCertificate.key } })
    expect(await runOneJob(known, 'mtls-known')).toEqual({ status: 'completed', result: { greeting: 'hello ada' } })
    expect(await storedRuns('mtls-known')).toEqual([{ job: 'greet', status: 'completed', result: { greeting: 'hello ada' } }])
  })
})

describe('certificate rotation', () => {
  it('a certificate replaced on disk is served to new connections without a restart; open connections carry on', async () => {
    const dir = join(certificates.dir, 'rotating')
    await mkdir(dir)
    const certFile = join(dir, 'tls.crt')
    const keyFile = join(dir, 'tls.key')
    await copyFile(serverCertificate.certFile, certFile)
    await copyFile(serverCertificate.keyFile, keyFile)
    const log = capturedLog()
    const server = await startServer({ tlsCertFile: certFile, tlsKeyFile: keyFile }, log.logger)
    const port = server.server.port
    const bothCas = [ca.cert, otherCa.cert]
    expect(await servedCertificateName(port, bothCas)).toBe('server-1')

    // Connected before the rotation, trusting the first CA only.
    const early = client(server.address, { tls: { ca: ca.cert } })
    await early.queue('rotation').enqueue('before', {})
    // Trusting only the CA of the next certificate: refused while the first is served.
    const tooSoon = client(server.address, { tls: { ca: otherCa.cert } })
    await expect(tooSoon.queue('rotation').enqueueMany([{ job: 'tooSoon', payload: {} }])).rejects.toBeInstanceOf(UnavailableError)

    // As a certificate manager does it: write the new files next to the old, then rename them into place.
    const rotated = await certificates.issue(otherCa, 'server-2', 'server')
    await copyFile(rotated.certFile, `${certFile}.new`)
    await copyFile(rotated.keyFile, `${keyFile}.new`)
    await rename(`${keyFile}.new`, keyFile)
    await rename(`${certFile}.new`, certFile)
    // Within the refresh interval (2 s), new connections get the new certificate.
    // (A read that falls between the two renames finds no usable pair, and that connection is refused.)
    await waitUntil(
      () => servedCertificateName(port, bothCas).catch(() => 'refused'),
      (name) => name === 'server-2',
      15_000,
    )

    const late = client(server.address, { tls: { ca: otherCa.cert } })
    await late.queue('rotation').enqueue('after', {})
    await early.queue('rotation').enqueue('stillConnected', {})
    expect((await storedRuns('rotation')).map((run) => run.job)).toEqual(['before', 'after', 'stillConnected'])
    expect(log.lines.filter((line) => line.msg === 'TLS certificate reloaded')).toEqual([
      expect.objectContaining({ certFile, keyFile, subject: 'CN=server-2' }),
    ])
  })
})

describe('TLS settings that cannot work stop the server at start', () => {
  it('a certificate without its key, a key without its certificate, or a client CA without either, naming the settings', async () => {
    const { certFile, keyFile } = serverCertificate
    await expect(startServer({ tlsCertFile: certFile })).rejects.toThrow(
      new ConfigError(
        'STACKSHIFT_TLS_CERT_FILE (--tls-cert-file) is set but STACKSHIFT_TLS_KEY_FILE (--tls-key-file) is not: TLS needs both the certificate and its private key',
      ),
    )
    await expect(startServer({ tlsKeyFile: keyFile })).rejects.toThrow(
      /^STACKSHIFT_TLS_KEY_FILE \(--tls-key-file\) is set but STACKSHIFT_TLS_CERT_FILE \(--tls-cert-file\) is not/,
    )
    await expect(startServer({ tlsClientCaFile: ca.certFile })).rejects.toThrow(
      /^STACKSHIFT_TLS_CLIENT_CA_FILE \(--tls-client-ca-file\) is set, but mTLS needs STACKSHIFT_TLS_CERT_FILE .* and STACKSHIFT_TLS_KEY_FILE/,
    )
    await expect(startServer({ tlsClientCaFile: ca.certFile, tlsKeyFile: keyFile })).rejects.toBeInstanceOf(ConfigError)
  })

  it('a file that cannot be read, naming the setting and the file', async () => {
    const missing = join(certificates.dir, 'missing.crt')
    const error = startServer({ tlsCertFile: missing, tlsKeyFile: serverCertificate.keyFile })
    await expect(error).rejects.toBeInstanceOf(ConfigError)
    await expect(error).rejects.toThrow(`STACKSHIFT_TLS_CERT_FILE (--tls-cert-file): cannot read ${missing}: ENOENT`)
    const missingCa = join(certificates.dir, 'missing-ca.crt')
    await expect(
      startServer({ tlsCertFile: serverCertificate.certFile, tlsKeyFile: serverCertificate.keyFile, tlsClientCaFile: missingCa }),
    ).rejects.toThrow(`STACKSHIFT_TLS_CLIENT_CA_FILE (--tls-client-ca-file): cannot read ${missingCa}`)
  })

  it('a key that is not the certificate’s, or a client CA file that holds no certificate, naming the files', async () => {
    await expect(startServer({ tlsCertFile: serverCertificate.certFile, tlsKeyFile: clientCertificate.keyFile })).rejects.toThrow(
      `STACKSHIFT_TLS_CERT_FILE (--tls-cert-file) ${serverCertificate.certFile} and STACKSHIFT_TLS_KEY_FILE (--tls-key-file) ${clientCertificate.keyFile}: not a usable certificate and private key`,
    )
    await expect(
      startServer({ tlsCertFile: serverCertificate.certFile, tlsKeyFile: serverCertificate.keyFile, tlsClientCaFile: ca.keyFile }),
    ).rejects.toThrow(`STACKSHIFT_TLS_CLIENT_CA_FILE (--tls-client-ca-file) ${ca.keyFile}: not a PEM certificate`)
  })
})
