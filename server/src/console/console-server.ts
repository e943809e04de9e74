import { type IncomingMessage, type RequestListener, type Server, type ServerResponse, createServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { status } from '@grpc/grpc-js'
import type { Logger } from '../logger.js'
import { type ConnectResponse, type ConnectUnary, connectError } from '../rpc/connect-unary.js'
import { type TlsFiles, certificateRefreshIntervalMs } from '../rpc/tls.js'
import type { BundleFile, ConsoleBundle } from './console-bundle.js'

/** A listening console. */
export interface ConsoleEndpoint {
  /** The port it listens on (useful when configured as 0). */
  port: number
  /** Stops listening and closes open connections. */
  close(): Promise<void>
}

/** What the page reads from `/config.json` before its first call: settings that are not data. */
export interface ConsolePageConfig {
  /** STACKSHIFT_CONSOLE_TRACE_URL: a URL with `{traceId}`, or null. */
  traceUrl: string | null
}

/*
 * Every response says what it is and may not be framed, sniffed or sent on
 * as a referrer; pages run only the bundle's own script. Inline styles are
 * allowed: the chart library positions its elements with them.
 */
const securityHeaders = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}

const notBuiltPage = `<!doctype html><meta charset="utf-8"><title>StackShift console</title>
<p>The console's bundle is not built. Run <code>npm run build</code> (or <code>npm install</code>) in the repository, then restart the server.</p>
<p>The Connect endpoint is served all the same.</p>\n`

/**
 * Serves the web console on `host:port` over HTTP/1.1 (HTTPS with the gRPC
 * server's certificate when TLS is on, and client certificates required with
 * mTLS, so keys never cross the network in the clear where gRPC's do not): `POST
 * /<package.Service>/<Method>` is the Connect endpoint (rpc/connect-unary.ts),
 * with request bodies of at most `maxMessageBytes`; `GET /config.json` the
 * page's settings; any other GET a file of the bundle, or the app's page
 * itself, so that a link such as `/runs/<id>` opens the app there. Data
 * reaches the page only through the Connect endpoint, behind its access checks.
 */
export async function startConsoleEndpoint(options: {
  host: string
  port: number
  connect: ConnectUnary
  bundle: ConsoleBundle | undefined
  pageConfig: ConsolePageConfig
  maxMessageBytes: number
  /** The gRPC server's TLS files (rpc/tls.ts); undefined: plain HTTP. */
  tls: { currentFiles(): TlsFiles | undefined } | undefined
  logger: Logger
}): Promise<ConsoleEndpoint> {
  const { connect, bundle, logger } = options
  const pageConfig: BundleFile = {
    body: Buffer.from(JSON.stringify(options.pageConfig)),
    contentType: 'application/json',
    etag: '',
  }
  const handle: RequestListener = (request, response) => {
    const path = pathOf(request)
    if (path !== undefined && (connect.isMethodPath(path) || isServicePath(path))) {
      serveConnect(request, response, path)
      return
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      send(response, request, 405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }, Buffer.from('method not allowed\n'))
      return
    }
    if (path === '/config.json') {
      sendFile(request, response, pageConfig)
      return
    }
    if (!bundle) {
      send(response, request, 503, { 'content-type': 'text/html; charset=utf-8' }, Buffer.from(notBuiltPage))
      return
    }
    const file = path === undefined ? undefined : bundle.get(path === '/' ? '/index.html' : path)
    if (file) {
      sendFile(request, response, file)
      return
    }
    // The app's own routes (`/runs/<id>`) get the page; a missing asset (a path with an extension) does not.
    if (path !== undefined && !/\.[a-z0-9]+$/i.test(path)) {
      sendFile(request, response, bundle.get('/index.html')!)
      return
    }
    send(response, request, 404, { 'content-type': 'text/plain' }, Buffer.from('not found\n'))
  }
  const { server, stopRefreshing } = options.tls
    ? serveTls(options.tls, handle, logger)
    : { server: createServer(handle), stopRefreshing: () => {} }

  /** Reads the body, bounded, and answers the call. */
  function serveConnect(request: IncomingMessage, response: ServerResponse, path: string): void {
    if (request.method !== 'POST') {
      sendConnect(request, response, {
        ...connectError(status.UNIMPLEMENTED, `${path}: the Connect endpoint takes POST requests`),
        httpStatus: 405,
        headers: { allow: 'POST' },
      })
      return
    }
    const declaredLength = Number(request.headers['content-length'] ?? 0)
    if (declaredLength > options.maxMessageBytes) {
      refuseTooLarge(request, response)
      return
    }
    const chunks: Buffer[] = []
    let received = 0
    const controller = new AbortController()
    // The response's 'close' before it finished: the client went away (or its connection broke).
    response.on('close', () => {
      if (!response.writableFinished) controller.abort()
    })
    request.on('data', (chunk: Buffer) => {
      received += chunk.length
      if (received > options.maxMessageBytes) {
        refuseTooLarge(request, response)
        return
      }
      chunks.push(chunk)
    })
    request.on('end', () => {
      if (response.headersSent) return
      const header = (name: string) => {
        const value = request.headers[name]
        return Array.isArray(value) ? value[0] : value
      }
      connect
        .handle({
          path,
          contentType: header('content-type'),
          contentEncoding: header('content-encoding'),
          protocolVersion: header('connect-protocol-version'),
          timeoutMs: header('connect-timeout-ms'),
          authorization: header('authorization'),
          body: Buffer.concat(chunks),
          peer: `${request.socket.remoteAddress ?? ''}:${request.socket.remotePort ?? ''}`,
          host: header('host') ?? '',
          signal: controller.signal,
        })
        .then(
          (answer) => sendConnect(request, response, answer),
          (error: unknown) => {
            logger.error({ err: error, path }, 'Connect call failed')
            sendConnect(request, response, connectError(status.INTERNAL, 'internal error'))
          },
        )
    })
  }

  function refuseTooLarge(request: IncomingMessage, response: ServerResponse): void {
    if (response.headersSent) return
    sendConnect(
      request,
      response,
      connectError(status.RESOURCE_EXHAUSTED, `the request is larger than ${options.maxMessageBytes} bytes`),
      true,
    )
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  server.on('error', (error) => logger.error({ err: error }, 'console endpoint failed'))
  const port = (server.address() as AddressInfo).port
  logger.info({ port, host: options.host, isTls: options.tls !== undefined, isBundleBuilt: bundle !== undefined }, 'web console listening')
  if (!bundle) logger.warn("the web console's bundle is not built (npm run build): its pages are missing, the Connect endpoint is served")
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        stopRefreshing()
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

/**
 * An HTTPS server presenting the files the gRPC server presents, and taking
 * them up when they change on disk (checked as often as rpc/tls.ts reads
 * them); with a client CA, a client without a certificate it signed is
 * refused during the handshake.
 */
function serveTls(
  tls: { currentFiles(): TlsFiles | undefined },
  handle: RequestListener,
  logger: Logger,
): { server: Server; stopRefreshing: () => void } {
  const contextOf = (files: TlsFiles) => ({ cert: files.certificate, key: files.privateKey, ca: files.clientCa })
  let served = tls.currentFiles()
  if (!served) throw new Error('TLS is on but its certificate and key are not usable')
  const isMutual = served.clientCa !== undefined
  const server = createHttpsServer({ ...contextOf(served), requestCert: isMutual, rejectUnauthorized: isMutual }, handle)
  const refresh = setInterval(() => {
    const files = tls.currentFiles()
    if (!files || !served) return
    const isSame =
      files.certificate.equals(served.certificate) &&
      files.privateKey.equals(served.privateKey) &&
      (files.clientCa === undefined || (served.clientCa !== undefined && files.clientCa.equals(served.clientCa)))
    if (isSame) return
    server.setSecureContext(contextOf(files))
    served = files
    logger.debug('web console: TLS files reloaded')
  }, certificateRefreshIntervalMs)
  refresh.unref()
  return { server, stopRefreshing: () => clearInterval(refresh) }
}

/** The URL's path, decoded; undefined when it cannot be decoded or holds a NUL. */
function pathOf(request: IncomingMessage): string | undefined {
  try {
    const path = decodeURIComponent(new URL(request.url ?? '/', 'http://console').pathname)
    return path.includes('\0') ? undefined : path
  } catch {
    return undefined
  }
}

/** `/stackshift.jobs.v1.NoSuchService/Method`: a call, not a page, though not a method this server has. */
function isServicePath(path: string): boolean {
  return /^\/[a-z0-9_]+(\.[a-z0-9_]+)+\.[A-Za-z0-9_]+\/[A-Za-z0-9_]+$/.test(path)
}

function sendConnect(request: IncomingMessage, response: ServerResponse, answer: ConnectResponse, isClosing = false): void {
  if (response.headersSent) return
  const headers: Record<string, string> = { 'content-type': answer.contentType, ...answer.headers }
  // A request refused before its body was read: the rest of the body is not worth reading.
  if (isClosing) headers.connection = 'close'
  send(response, request, answer.httpStatus, headers, answer.body)
}

function sendFile(request: IncomingMessage, response: ServerResponse, file: BundleFile): void {
  const headers: Record<string, string> = { 'content-type': file.contentType, 'cache-control': 'no-cache' }
  if (file.gzipped) headers.vary = 'accept-encoding'
  if (file.etag) {
    headers.etag = file.etag
    if (request.headers['if-none-match'] === file.etag) {
      send(response, request, 304, headers, Buffer.alloc(0))
      return
    }
  }
  if (file.gzipped && acceptsGzip(request)) {
    send(response, request, 200, { ...headers, 'content-encoding': 'gzip' }, file.gzipped)
    return
  }
  send(response, request, 200, headers, file.body)
}

/** Whether the request's Accept-Encoding takes gzip (and does not refuse it with q=0). */
function acceptsGzip(request: IncomingMessage): boolean {
  const accepted = request.headers['accept-encoding'] ?? ''
  return accepted
    .split(',')
    .map((part) => part.trim().toLowerCase().split(';'))
    .some(([coding, quality]) => coding === 'gzip' && !/^\s*q=0(\.0*)?\s*$/.test(quality ?? ''))
}

function send(response: ServerResponse, request: IncomingMessage, httpStatus: number, headers: Record<string, string>, body: Buffer): void {
  response.writeHead(httpStatus, { ...securityHeaders, ...headers, 'content-length': String(body.length) })
  response.end(request.method === 'HEAD' || httpStatus === 304 ? undefined : body)
}
