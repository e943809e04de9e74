import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  ssr: {
    // Workspace packages resolve to their TypeScript sources through the `@stackshift/source`
    // condition of their package.json `exports`: no build needed to test. Vitest adds its own
    // server conditions to this list.
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
