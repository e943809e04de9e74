import { readFileSync } from 'node:fs'
import ts from 'typescript'
import { type Setting, flagName, settings } from '../server/src/config.js'

/*
 * The README's Configuration table, rendered from `settings` in
 * server/src/config.ts: each entry gives the variable, its flag and its
 * default, and the entry's JSDoc its meaning. `npm run gen:docs` writes it
 * between two markers in README.md; test/unit/config-docs.test.ts fails when
 * the README's copy differs.
 */

export const configFile = new URL('../server/src/config.ts', import.meta.url)
export const readmeFile = new URL('../README.md', import.meta.url)

/** The markers around the generated table in README.md. */
export const tableStart = '<!-- settings table: generated from server/src/config.ts by `npm run gen:docs`; edit it there -->'
export const tableEnd = '<!-- end of settings table -->'

/** The JSDoc of each entry of `settings` in the config module's source, by name, on one line. */
function readMeanings(source: string): Map<string, string> {
  const file = ts.createSourceFile('config.ts', source, ts.ScriptTarget.Latest, true)
  const declaration = file.statements
    .filter(ts.isVariableStatement)
    .flatMap((statement) => statement.declarationList.declarations)
    .find((candidate) => candidate.name.getText(file) === 'settings')
  let list = declaration?.initializer
  while (list && (ts.isSatisfiesExpression(list) || ts.isAsExpression(list) || ts.isParenthesizedExpression(list))) list = list.expression
  if (!list || !ts.isObjectLiteralExpression(list)) throw new Error('server/src/config.ts: no `const settings = { ... }` found')
  const meanings = new Map<string, string>()
  for (const property of list.properties) {
    if (!ts.isPropertyAssignment(property))
      throw new Error(`server/src/config.ts: write each setting as \`name: { ... }\`, not ${property.getText(file)}`)
    const text = ts
      .getJSDocCommentsAndTags(property)
      .filter(ts.isJSDoc)
      .map((doc) => ts.getTextOfJSDocComment(doc.comment) ?? '')
      .join(' ')
    meanings.set(property.name.getText(file), text.replace(/\s+/g, ' ').trim())
  }
  return meanings
}

/** The Markdown table of every setting, in the order of `settings`. */
export function renderConfigTable(configSource: string = readFileSync(configFile, 'utf8')): string {
  const meanings = readMeanings(configSource)
  const rows = Object.entries(settings).map(([name, setting]: [string, Setting]) => {
    const meaning = meanings.get(name)
    if (!meaning) throw new Error(`server/src/config.ts: the setting ${name} has no JSDoc, which is its meaning in the README`)
    const value = setting.default === undefined ? 'unset' : `\`${setting.default}\``
    return `| \`${setting.env}\` | \`${flagName(setting.env)}\` | ${value} | ${meaning.replaceAll('|', '\\|')} |`
  })
  return ['| variable | flag | default | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n')
}

function findMarkers(readme: string): { start: number; end: number } {
  const start = readme.indexOf(tableStart)
  const end = readme.indexOf(tableEnd)
  if (start < 0 || end < start) throw new Error(`README.md: the settings table's markers are missing:\n${tableStart}\n${tableEnd}`)
  return { start: start + tableStart.length, end }
}

/** The table between the README's markers, as it stands. */
export function readConfigTable(readme: string): string {
  const { start, end } = findMarkers(readme)
  return readme.slice(start, end).trim()
}

/** The README with `table` between its markers. */
export function replaceConfigTable(readme: string, table: string): string {
  const { start, end } = findMarkers(readme)
  return `${readme.slice(0, start)}\n\n${table}\n\n${readme.slice(end)}`
}
