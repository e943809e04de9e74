import { type ColumnHelper, type RowData, tableFeatures, useTable } from '@tanstack/react-table'
import type { ReactNode } from 'react'
import { navigate } from '../router.js'

/** The table features the console's lists use: none beyond the core (paging and filtering happen on the server). */
export const listFeatures = tableFeatures({})
export type ListFeatures = typeof listFeatures

/** A list's columns, as the column helper's `columns([...])` builds them (each column keeps its own value type). */
export type ListColumns<Row extends RowData> = ReturnType<ColumnHelper<ListFeatures, Row>['columns']>

/**
 * A list of rows the server returned, one page at a time. A row with a link
 * opens it on click (and the link inside it still opens in a new tab).
 */
export function DataTable<Row extends RowData>(props: {
  columns: ListColumns<Row>
  data: Row[]
  rowKey: (row: Row) => string
  rowHref?: (row: Row) => string | undefined
  empty: ReactNode
  label: string
}) {
  const table = useTable<ListFeatures, Row>({
    features: listFeatures,
    columns: props.columns,
    data: props.data,
    getRowId: (row) => props.rowKey(row),
  })
  return (
    <div className="table-wrap">
      <table className="table" aria-label={props.label}>
        <thead>
          {table.getHeaderGroups().map((group) => (
            <tr key={group.id}>
              {group.headers.map((header) => (
                <th key={header.id}>{header.isPlaceholder ? null : <table.FlexRender header={header} />}</th>
              ))}
            </tr>
          ))}
        </thead>
        <tbody>
          {table.getRowModel().rows.map((row) => {
            const href = props.rowHref?.(row.original)
            return (
              <tr
                key={row.id}
                className={href ? 'clickable' : undefined}
                onClick={(event) => {
                  if (!href || (event.target as HTMLElement).closest('a, button, input')) return
                  navigate(href)
                }}
              >
                {row.getAllCells().map((cell) => (
                  <td key={cell.id}>
                    <table.FlexRender cell={cell} />
                  </td>
                ))}
              </tr>
            )
          })}
        </tbody>
      </table>
      {props.data.length === 0 && <div className="table-empty">{props.empty}</div>}
    </div>
  )
}
