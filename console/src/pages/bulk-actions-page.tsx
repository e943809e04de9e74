import { type BulkAction, BulkActionStatus, type RunSelection } from '@stackshift/proto/operator-service'
import { useQuery } from '@tanstack/react-query'
import { createColumnHelper } from '@tanstack/react-table'
import { listBulkActions } from '../api/methods.js'
import { bulkKindLabels } from '../bulk-action-labels.js'
import { DataTable, type ListFeatures } from '../components/data-table.js'
import { ErrorNotice } from '../components/error-notice.js'
import { formatCount, formatPreciseTime, formatTime, runStatusLabels } from '../format.js'
import { useSession } from '../session.js'

/** A selection as a short sentence: `queue emails · failed · payload {"a":1}`. */
function describeSelection(selection: RunSelection | undefined): string {
  if (!selection) return 'every run'
  const parts = [
    selection.queue && `queue ${selection.queue}`,
    selection.job && `job ${selection.job}`,
    selection.status ? runStatusLabels[selection.status] : '',
    selection.createdAfter && `after ${formatTime(selection.createdAfter)}`,
    selection.createdBefore && `before ${formatTime(selection.createdBefore)}`,
    selection.payloadMatchJson && `payload ${selection.payloadMatchJson}`,
  ].filter(Boolean)
  return parts.length > 0 ? parts.join(' · ') : 'every run'
}

const column = createColumnHelper<ListFeatures, BulkAction>()
const columns = column.columns([
  column.accessor('kind', {
    header: 'Action',
    cell: (info) => (
      <span className="strong">
        {bulkKindLabels[info.getValue()]}
        {info.row.original.fromStepId ? ` from ${info.row.original.fromStepId}` : ''}
      </span>
    ),
  }),
  column.accessor('selection', {
    header: 'Runs selected by',
    cell: (info) => <span className="small">{describeSelection(info.getValue())}</span>,
  }),
  column.accessor('status', {
    header: 'Status',
    cell: (info) =>
      info.getValue() === BulkActionStatus.BULK_ACTION_STATUS_COMPLETED ? (
        <span className="badge badge-completed">completed</span>
      ) : (
        <span className="badge badge-running">running</span>
      ),
  }),
  column.accessor('handled', { header: 'Handled', cell: (info) => <span className="num">{formatCount(info.getValue())}</span> }),
  column.accessor('skipped', { header: 'Skipped', cell: (info) => <span className="num">{formatCount(info.getValue())}</span> }),
  column.accessor('createdAt', {
    header: 'Started',
    cell: (info) => <span title={formatPreciseTime(info.getValue())}>{formatTime(info.getValue())}</span>,
  }),
  column.accessor('finishedAt', { header: 'Finished', cell: (info) => formatTime(info.getValue()) }),
])

/** Bulk actions of the namespace, newest first, with their progress. Start one from the runs list's filter. */
export function BulkActionsPage() {
  const session = useSession()
  const actions = useQuery({
    queryKey: ['bulk-actions', session.namespace],
    queryFn: ({ signal }) => session.call(listBulkActions, { namespace: session.namespace, limit: 100 }, signal),
    refetchInterval: 2000,
  })
  return (
    <div className="page">
      <div className="page-header">
        <h1>Bulk actions</h1>
        <span className="muted small">Start one from the runs list: filter the runs, then “Bulk action…”.</span>
      </div>
      {actions.isError && <ErrorNotice error={actions.error} />}
      <DataTable
        label="Bulk actions"
        columns={columns}
        data={actions.data?.actions ?? noActions}
        rowKey={(action) => action.id}
        empty={actions.isPending ? 'Loading…' : 'No bulk action yet.'}
      />
    </div>
  )
}

const noActions: BulkAction[] = []
