/*
 * Aligned columns for people: each column as wide as its widest cell, two
 * spaces between columns, no trailing spaces.
 */

/** Renders `rows` under `headers`. */
export function renderTable(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  return renderColumns([headers, ...rows])
}

/** Renders `rows` in aligned columns; a row shorter than the first leaves its last cells empty. */
export function renderColumns(rows: ReadonlyArray<readonly string[]>): string {
  const columns = rows[0]?.length ?? 0
  const widths = Array.from({ length: columns }, (_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length)))
  return rows
    .map((row) =>
      widths
        .map((width, column) => {
          const cell = row[column] ?? ''
          return cell + ' '.repeat(width - cell.length)
        })
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}
