import { createHash } from 'node:crypto'
import { readFile, readdir } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, extname, join, relative, sep } from 'node:path'
import { gzipSync } from 'node:zlib'

/** One file of the console's built bundle, ready to send. */
export interface BundleFile {
  body: Buffer
  contentType: string
  /** A strong ETag of the content, for conditional GETs. */
  etag: string
  /** The body gzipped, for clients that accept it; undefined when that would not make it smaller. */
  gzipped?: Buffer | undefined
}

/** The console's built bundle, by URL path (`/index.html`, `/assets/console.js`). */
export type ConsoleBundle = ReadonlyMap<string, BundleFile>

const contentTypes: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
}

/**
 * Where the console's bundle is built: `dist/` of the @stackshift/console
 * package (console/ in the repository), wherever npm put it.
 */
export function consoleBundleDirectory(): string {
  return join(dirname(createRequire(import.meta.url).resolve('@stackshift/console/package.json')), 'dist')
}

/**
 * Reads the whole bundle into memory (a few hundred KiB): requests are then
 * answered from a map of the files that exist, so no path a client sends
 * ever reaches the file system, and no `..` can lead out of the bundle.
 * Undefined when there is no bundle (console/ not built: `npm run build`).
 */
export async function loadConsoleBundle(directory = consoleBundleDirectory()): Promise<ConsoleBundle | undefined> {
  let paths: string[]
  try {
    paths = await readdir(directory, { recursive: true })
  } catch {
    return undefined
  }
  const files = new Map<string, BundleFile>()
  for (const path of paths) {
    const contentType = contentTypes[extname(path)]
    if (contentType === undefined) continue
    const body = await readFile(join(directory, path)).catch(() => undefined)
    if (!body) continue
    const urlPath = '/' + relative(directory, join(directory, path)).split(sep).join('/')
    // Compressed once, at start: the script is about a quarter of its size gzipped.
    const gzipped = gzipSync(body, { level: 9 })
    files.set(urlPath, {
      body,
      contentType,
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
      gzipped: gzipped.length < body.length * 0.9 ? gzipped : undefined,
    })
  }
  return files.has('/index.html') ? files : undefined
}
