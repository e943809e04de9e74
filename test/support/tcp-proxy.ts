import { type Server, type Socket, connect, createServer } from 'node:net'

/**
 * A TCP proxy to a database, whose link the test can cut and restore: while
 * cut, open connections are destroyed and new ones are refused at once, as
 * when PostgreSQL is down.
 */
export interface TcpProxy {
  /** The upstream URL with the proxy's port in place of PostgreSQL's. */
  url: string
  cut(): void
  restore(): void
  close(): Promise<void>
}

export async function startTcpProxy(upstreamUrl: string): Promise<TcpProxy> {
  const upstream = new URL(upstreamUrl)
  const sockets = new Set<Socket>()
  let isCut = false
  const server: Server = createServer((client) => {
    if (isCut) {
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
