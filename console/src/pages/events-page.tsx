import type { ReceivedEvent } from '@stackshift/proto/operator-service'
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { createColumnHelper } from '@tanstack/react-table'
import { useState } from 'react'
import { listEvents, sendEvent } from '../api/methods.js'
import { DataTable, type ListFeatures } from '../components/data-table.js'
import { ErrorNotice } from '../components/error-notice.js'
import { formatPreciseTime, formatTime, shortId } from '../format.js'
import { Link } from '../router.js'
import { useSession } from '../session.js'

const pageSize = 50

const column = createColumnHelper<ListFeatures, ReceivedEvent>()
const columns = column.columns([
  column.display({ id: 'name', header: 'Event', cell: (info) => <span className="strong">{info.row.original.event?.name}</span> }),
  column.display({
    id: 'id',
    header: 'Id',
    cell: (info) => (
      <span className="mono small" title={info.row.original.event?.id}>
        {info.row.original.event?.id}
      </span>
    ),
  }),
  column.display({
    id: 'data',
    header: 'Data',
    cell: (info) => (
      <span className="mono small truncate" title={info.row.original.event?.dataJson}>
        {info.row.original.event?.dataJson}
      </span>
    ),
  }),
  column.display({
    id: 'received',
    header: 'Received',
    cell: (info) => (
      <span title={formatPreciseTime(info.row.original.event?.receivedAt)}>{formatTime(info.row.original.event?.receivedAt)}</span>
    ),
  }),
  column.accessor('deliveries', {
    header: 'Resumed runs',
    cell: (info) =>
      info.getValue().length === 0 ? (
        <span className="muted">none</span>
      ) : (
        <span className="deliveries">
          {info.getValue().map((delivery) => (
            <Link key={delivery.runId} href={`/runs/${delivery.runId}`} className="chip mono" title={`step ${delivery.stepId}`}>
              {shortId(delivery.runId)} · {delivery.stepId}
            </Link>
          ))}
        </span>
      ),
  }),
])

/** Events received, newest first, with the runs each one resumed; and sending one. */
export function EventsPage() {
  const session = useSession()
  const [name, setName] = useState('')
  const [appliedName, setAppliedName] = useState('')
  const [cursors, setCursors] = useState<string[]>([])
  const [isSendOpen, setSendOpen] = useState(false)
  const cursor = cursors.at(-1) ?? ''
  const events = useQuery({
    queryKey: ['events', session.namespace, appliedName, cursor],
    queryFn: ({ signal }) => session.call(listEvents, { namespace: session.namespace, name: appliedName, limit: pageSize, cursor }, signal),
    placeholderData: keepPreviousData,
    refetchInterval: cursors.length === 0 ? 3000 : false,
  })
  return (
    <div className="page">
      <div className="page-header">
        <h1>Events</h1>
        <div className="page-actions">
          {session.canEnqueue && (
            <button className="button button-primary" onClick={() => setSendOpen(!isSendOpen)}>
              Send event…
            </button>
          )}
        </div>
      </div>
      {isSendOpen && <SendEventForm onClose={() => setSendOpen(false)} />}
      <form
        className="filters card"
        onSubmit={(event) => {
          event.preventDefault()
          setCursors([])
          setAppliedName(name.trim())
        }}
      >
        <div className="filter-row">
          <label className="field">
            <span>Name</span>
            <input value={name} placeholder="any" onChange={(event) => setName(event.target.value)} spellCheck={false} />
          </label>
          <div className="filter-buttons">
            <button className="button button-primary" type="submit">
              Apply
            </button>
          </div>
        </div>
      </form>
      {events.isError && <ErrorNotice error={events.error} />}
      <DataTable
        label="Events"
        columns={columns}
        data={events.data?.events ?? noEvents}
        rowKey={(received) => received.event?.id ?? ''}
        empty={events.isPending ? 'Loading…' : 'No events.'}
      />
      <div className="pager">
        <button className="button" disabled={cursors.length === 0} onClick={() => setCursors(cursors.slice(0, -1))}>
          ← Newer
        </button>
        <button
          className="button"
          disabled={!events.data?.nextCursor}
          onClick={() => events.data?.nextCursor && setCursors([...cursors, events.data.nextCursor])}
        >
          Older →
        </button>
      </div>
    </div>
  )
}

const noEvents: ReceivedEvent[] = []

function SendEventForm(props: { onClose: () => void }) {
  const session = useSession()
  const queryClient = useQueryClient()
  const [name, setName] = useState('')
  const [id, setId] = useState('')
  const [data, setData] = useState('{}')
  const problem = dataProblem(data)
  const send = useMutation({
    mutationFn: () => session.call(sendEvent, { namespace: session.namespace, name: name.trim(), id: id.trim(), dataJson: data }),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ['events'] }),
  })
  return (
    <form
      className="card stack"
      aria-label="Send event"
      onSubmit={(event) => {
        event.preventDefault()
        send.mutate()
      }}
    >
      <div className="card-header">
        <h2>Send an event</h2>
        <button type="button" className="icon-button" onClick={props.onClose} aria-label="Close">
          ×
        </button>
      </div>
      <div className="filter-row">
        <label className="field">
          <span>Name</span>
          <input
            value={name}
            required
            placeholder="payment.confirmed"
            onChange={(event) => setName(event.target.value)}
            spellCheck={false}
          />
        </label>
        <label className="field field-wide">
          <span>Id (sending an id again delivers nothing new)</span>
          <input value={id} placeholder="generated when empty" onChange={(event) => setId(event.target.value)} spellCheck={false} />
        </label>
      </div>
      <label className={problem ? 'field field-invalid' : 'field'}>
        <span>Data (JSON)</span>
        <textarea className="mono" rows={5} value={data} onChange={(event) => setData(event.target.value)} spellCheck={false} />
        {problem && <small>{problem}</small>}
      </label>
      {send.isError && <ErrorNotice error={send.error} action="Send" />}
      {send.data && (
        <div className="notice notice-info" role="status">
          {send.data.deduplicated ? 'An event with this id was already received: nothing new was delivered.' : 'Sent.'} It resumed{' '}
          <strong>{send.data.resumedRuns}</strong> waiting run{send.data.resumedRuns === 1 ? '' : 's'}.
        </div>
      )}
      <div className="dialog-actions">
        <button className="button button-primary" type="submit" disabled={!name.trim() || Boolean(problem) || send.isPending}>
          Send
        </button>
      </div>
    </form>
  )
}

function dataProblem(text: string): string | undefined {
  try {
    JSON.parse(text)
    return undefined
  } catch {
    return 'not JSON'
  }
}
