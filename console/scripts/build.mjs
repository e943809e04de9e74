// Builds the console's production bundle into dist/ with esbuild: `npm install` (the root
// `prepare` script), `npm run build`, `npm start` and `npm test` all run it, so the server
// always serves a bundle made from the sources beside it.
import { copyFile, mkdir, rm } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

let esbuild
try {
  esbuild = await import('esbuild')
} catch (error) {
  // A production install (npm ci --omit=dev) has no build tools, and no use for them: its
  // bundle is built elsewhere and copied in. Anywhere else, a missing esbuild is an error.
  if (process.env.npm_lifecycle_event === 'prepare') {
    console.log('console: esbuild is not installed (a production install?); the bundle is not built')
    process.exit(0)
  }
  throw error
}

await rm(`${root}dist`, { recursive: true, force: true })
await mkdir(`${root}dist`, { recursive: true })
const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: ['src/main.tsx'],
  entryNames: 'console',
  outdir: 'dist/assets',
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022', 'chrome111', 'firefox114', 'safari16.4'],
  // The protocol package's TypeScript sources, as the tests read them.
  conditions: ['@stackshift/source'],
  // The generated service modules import @grpc/grpc-js for their Node.js clients, which the
  // console never makes; the stub stands in for it so that Node.js's modules stay out.
  alias: { '@grpc/grpc-js': './src/grpc-js-stub.ts' },
  define: { 'process.env.NODE_ENV': '"production"' },
  legalComments: 'external',
  metafile: true,
  logLevel: 'warning',
})
await copyFile(`${root}src/index.html`, `${root}dist/index.html`)
await copyFile(`${root}src/favicon.svg`, `${root}dist/favicon.svg`)
const bytes = Object.entries(result.metafile.outputs)
  .filter(([path]) => /\.(js|css)$/.test(path))
  .map(([path, output]) => `${path.replace(/^dist\//, '')} ${(output.bytes / 1024).toFixed(0)} KiB`)
console.log(`console: built dist/ (${bytes.join(', ')})`)
