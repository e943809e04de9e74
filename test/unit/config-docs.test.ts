import { readFileSync } from 'node:fs'
import { expect, it } from 'vitest'
import { settings } from '../../server/src/config.js'
import { configFile, readConfigTable, readmeFile, renderConfigTable, replaceConfigTable } from '../../scripts/config-table.js'

const configSource = readFileSync(configFile, 'utf8')

it("the README's Configuration table is the one the settings in server/src/config.ts render", () => {
  const readme = readFileSync(readmeFile, 'utf8')
  expect(
    readConfigTable(readme),
    "README.md's Configuration table differs from the settings in server/src/config.ts (write them there, not in the README): run `npm run gen:docs`",
  ).toBe(renderConfigTable(configSource))
})

it('renders one row per setting: variable, flag, default (or unset) and the JSDoc as meaning', () => {
  const rows = renderConfigTable(configSource).split('\n')
  expect(rows.slice(0, 2)).toEqual(['| variable | flag | default | meaning |', '| --- | --- | --- | --- |'])
  expect(rows).toHaveLength(2 + Object.keys(settings).length)
  expect(rows).toContain('| `STACKSHIFT_PORT` | `--port` | `50051` | gRPC port; `0` picks a free one. |')
  expect(rows[2]).toMatch(/^\| `DATABASE_URL` \| `--database-url` \| unset \| PostgreSQL connection string\. /)
})

it('follows a changed meaning, and refuses a setting without one', () => {
  const meaning = '/** gRPC port; `0` picks a free one. */'
  expect(configSource).toContain(meaning)
  expect(renderConfigTable(configSource.replace(meaning, '/** Where | to listen. */'))).toContain(
    '| `--port` | `50051` | Where \\| to listen. |',
  )
  expect(() => renderConfigTable(configSource.replace(meaning, ''))).toThrow(/the setting port has no JSDoc/)
})

it('rewrites only what lies between the markers', () => {
  const readme = readFileSync(readmeFile, 'utf8')
  const rewritten = replaceConfigTable(readme, '| stale |')
  expect(readConfigTable(rewritten)).toBe('| stale |')
  expect(replaceConfigTable(rewritten, readConfigTable(readme))).toBe(readme)
  expect(() => readConfigTable('# no table here')).toThrow(/markers are missing/)
})
