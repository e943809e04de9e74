import type { ConnectedWorker } from '@stackshift/proto/operator-service'
import { useQuery } from '@tanstack/react-query'
import { createColumnHelper } from '@tanstack/react-table'
import { listWorkers } from '../api/methods.js'
import { DataTable, type ListFeatures } from '../components/data-table.js'
import { ErrorNotice } from '../components/error-notice.js'
import { formatPreciseTime, formatRelative, formatTime } from '../format.js'
import { useSession } from '../session.js'

const column = createColumnHelper<ListFeatures, ConnectedWorker>()
const columns = column.columns([
  column.accessor('workerId', { header: 'Worker', cell: (info) => <span className="mono strong">{info.getValue()}</span> }),
  column.accessor('queues', { header: 'Queues', cell: (info) => <Chips values={info.getValue()} /> }),
  column.accessor('jobs', { header: 'Jobs', cell: (info) => <Chips values={info.getValue()} /> }),
  column.accessor('freeSlots', { header: 'Free slots', cell: (info) => <span className="num">{info.getValue()}</span> }),
  column.accessor('sdk', { header: 'SDK', cell: (info) => <span className="small">{info.getValue()}</span> }),
  column.accessor('connectedAt', {
    header: 'Connected',
    cell: (info) => <span title={formatPreciseTime(info.getValue())}>{formatTime(info.getValue())}</span>,
  }),
  column.accessor('lastSeenAt', {
    header: 'Last seen',
    cell: (info) => {
      const seen = info.getValue()
      return seen ? <span title={formatPreciseTime(seen)}>{formatRelative(seen)}</span> : '—'
    },
  }),
  column.accessor('serverId', {
    header: 'Server',
    cell: (info) => (
      <span className="mono small" title={info.getValue()}>
        {info.getValue().slice(0, 8)}
      </span>
    ),
  }),
])

function Chips(props: { values: string[] }) {
  return (
    <span className="chips">
      {props.values.map((value) => (
        <span key={value} className="chip">
          {value}
        </span>
      ))}
    </span>
  )
}

/** Workers connected to any server of the namespace (ListWorkers). */
export function WorkersPage() {
  const session = useSession()
  const workers = useQuery({
    queryKey: ['workers', session.namespace],
    queryFn: ({ signal }) => session.call(listWorkers, { namespace: session.namespace }, signal),
    refetchInterval: 3000,
  })
  const list = workers.data?.workers ?? noWorkers
  return (
    <div className="page">
      <div className="page-header">
        <h1>Workers</h1>
        <span className="muted">
          {list.length} connected · {list.reduce((sum, worker) => sum + worker.freeSlots, 0)} free slots
        </span>
      </div>
      {workers.isError && <ErrorNotice error={workers.error} />}
      <DataTable
        label="Workers"
        columns={columns}
        data={list}
        rowKey={(worker) => worker.workerId}
        empty={workers.isPending ? 'Loading…' : 'No worker is connected to this namespace.'}
      />
    </div>
  )
}

const noWorkers: ConnectedWorker[] = []
