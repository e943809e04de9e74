import { createRequire } from 'node:module'

const { name, version } = createRequire(import.meta.url)('../package.json') as { name: string; version: string }

/**
 * This package's name and version, read once from its package.json: one
 * directory up from both src/ (run from source) and dist/ (built), so the
 * version is written in one place only.
 */
export const sdkPackage: { readonly name: string; readonly version: string } = { name, version }
