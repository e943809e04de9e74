import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  resolve: {
    // Workspace packages resolve to their TypeScript sources: no build needed to test.
    alias: {
      '@stackshift/server': fileURLToPath(new URL('../server/src/index.ts', import.meta.url)),
      '@stackshift/sdk': fileURLToPath(new URL('../sdk/src/index.ts', import.meta.url)),
    },
  },
  ssr: {
    // The same for what they import through package.json `exports` (@stackshift/proto/run and
    // the like). Vitest adds its own server conditions to this list.
    resolve: { conditions: ['@stackshift/source'] },
  },
  test: {
    include: ['**/*.test.ts'],
    globalSetup: ['./support/global-setup.ts'],
    pool: 'forks',
    maxWorkers: 3,
    minWorkers: 1,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
  },
})
