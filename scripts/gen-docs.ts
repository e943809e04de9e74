// Rewrites the README's Configuration table from server/src/config.ts (`npm run gen:docs`).
import { readFileSync, writeFileSync } from 'node:fs'
import { readmeFile, renderConfigTable, replaceConfigTable } from './config-table.js'

const readme = readFileSync(readmeFile, 'utf8')
const updated = replaceConfigTable(readme, renderConfigTable())
if (updated === readme) {
  console.log('README.md: the Configuration table is up to date')
} else {
  writeFileSync(readmeFile, updated)
  console.log('README.md: the Configuration table is rewritten from server/src/config.ts')
}
