import { type Server, type Socket, connect, createServer } from 'node:net'

/**
 * A TCP proxy to a database or a server, whose link the test can cut and
 * restore: while cut, open connections are destroyed and new ones are refused
 * at once, as when PostgreSQL (or the server) is down.
 */
export interface TcpProxy {
  /** The upstream URL with the proxy's address in place of the upstream's. */
  url: string
  /** Connections refused while cut, so far. */
  readonly refusedConnections: number
  cut(): void
  restore(): void
  close(): Promise<void>
}

export async function startTcpProxy(upstreamUrl: string): Promise<TcpProxy> {
  const upstream = new URL(upstreamUrl)
  const sockets = new Set<Socket>()
  let isCut = false
  let refusedConnections = 0
  const server: Server = createServer((client) => {
    if (isCut) {
      refusedConnections++
      client.destroy()
      return
    }
    const target = connect(Number(upstream.port), upstream.hostname)
    for (const socket of [client, target]) {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
      socket.on('error', () => {
        client.destroy()
        target.destroy()
      })
    }
    client.pipe(target)
    target.pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const proxied = new URL(upstreamUrl)
  proxied.hostname = '127.0.0.1'
  proxied.port = String((server.address() as { port: number }).port)
  return {
    url: proxied.toString(),
    get refusedConnections() {
      return refusedConnections
    },
    cut: () => {
      isCut = true
      for (const socket of sockets) socket.destroy()
    },
    restore: () => {
      isCut = false
    },
    close: async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
