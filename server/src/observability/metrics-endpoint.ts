import { createHash, timingSafeEqual } from 'node:crypto'
import { type IncomingMessage, type Server, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from '../logger.js'
import type { ServerMetrics } from './metrics.js'

/** The path Prometheus scrapes. */
export const metricsPath = '/metrics'

/** A listening Prometheus endpoint. */
export interface MetricsEndpoint {
  /** The port it listens on (useful when configured as 0). */
  port: number
  /** Stops listening and closes open connections (scrapers keep theirs alive between scrapes). */
  close(): Promise<void>
}

/**
 * Serves `GET /metrics` in the Prometheus text format over plain HTTP, on its
 * own port: scrapers and autoscalers (KEDA) speak HTTP, not gRPC. With a
 * `token`, a request without `Authorization: Bearer <token>` gets 401 and
 * nothing is collected for it.
 */
export async function startMetricsEndpoint(options: {
  host: string
  port: number
  /** Set: every request must carry it as a bearer token. */
  token?: string | undefined
  metrics: ServerMetrics
  logger: Logger
}): Promise<MetricsEndpoint> {
  const { metrics, logger } = options
  const isAuthorized = options.token === undefined ? () => true : bearerTokenCheck(options.token)
  const server: Server = createServer((request, response) => {
    if (!isAuthorized(request)) {
      response
        .writeHead(401, { 'www-authenticate': 'Bearer realm="metrics"', 'content-type': 'text/plain' })
        .end('unauthorized: send Authorization: Bearer <STACKSHIFT_METRICS_TOKEN>\n')
      return
    }
    const path = new URL(request.url ?? '/', 'http://metrics').pathname
    if (path !== metricsPath) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end(`not found; metrics are at ${metricsPath}\n`)
      return
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n')
      return
    }
    metrics.expose().then(
      (body) => response.writeHead(200, { 'content-type': metrics.contentType }).end(request.method === 'HEAD' ? undefined : body),
      (error: unknown) => {
        logger.error({ err: error }, 'could not collect metrics')
        response.writeHead(500, { 'content-type': 'text/plain' }).end('could not collect metrics\n')
      },
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  server.on('error', (error) => logger.error({ err: error }, 'metrics endpoint failed'))
  const port = (server.address() as AddressInfo).port
  logger.info({ port, host: options.host, path: metricsPath, isTokenRequired: options.token !== undefined }, 'metrics endpoint listening')
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

/**
 * Whether a request carries `Authorization: Bearer <token>`. The comparison
 * takes the same time whatever the request holds: both sides are hashed to
 * equal lengths first, so neither a prefix nor the length of the token leaks.
 */
function bearerTokenCheck(token: string): (request: IncomingMessage) => boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest()
  const expected = digest(`Bearer ${token}`)
  return (request) => timingSafeEqual(digest(request.headers.authorization ?? ''), expected)
}
