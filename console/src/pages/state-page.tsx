import type { StateEntry } from '@stackshift/proto/state-service'
import { keepPreviousData, useQuery } from '@tanstack/react-query'
import { createColumnHelper } from '@tanstack/react-table'
import { useState } from 'react'
import { getStateEntry, listStateEntries } from '../api/methods.js'
import { DataTable, type ListFeatures } from '../components/data-table.js'
import { ErrorNotice } from '../components/error-notice.js'
import { JsonBlock } from '../components/json-block.js'
import { formatPreciseTime, formatRelative, formatTime } from '../format.js'
import { hrefOf, navigate, useLocation } from '../router.js'
import { useSession } from '../session.js'

const pageSize = 100

const column = createColumnHelper<ListFeatures, StateEntry>()
const columns = column.columns([
  column.accessor('key', { header: 'Key', cell: (info) => <span className="mono strong">{info.getValue()}</span> }),
  column.accessor('valueJson', {
    header: 'Value',
    cell: (info) => (
      <span className="mono small truncate" title={info.getValue()}>
        {info.getValue()}
      </span>
    ),
  }),
  column.accessor('version', { header: 'Version', cell: (info) => <span className="num">{info.getValue()}</span> }),
  column.accessor('expiresAt', { header: 'Expires', cell: (info) => <Expiry date={info.getValue()} /> }),
  column.accessor('updatedAt', {
    header: 'Updated',
    cell: (info) => <span title={formatPreciseTime(info.getValue())}>{formatTime(info.getValue())}</span>,
  }),
])

function Expiry(props: { date: Date | undefined }) {
  if (!props.date) return <span className="muted">never</span>
  return <span title={formatPreciseTime(props.date)}>{formatRelative(props.date)}</span>
}

/** The State Store, browsed by key prefix (StateService.List); an entry opens with its version and TTL. */
export function StatePage() {
  const session = useSession()
  const { query } = useLocation()
  const prefix = query.get('prefix') ?? ''
  const selectedKey = query.get('key') ?? undefined
  const [draft, setDraft] = useState(prefix)
  const [cursors, setCursors] = useState<string[]>([])
  const cursor = cursors.at(-1) ?? ''
  const entries = useQuery({
    queryKey: ['state', session.namespace, prefix, cursor],
    queryFn: ({ signal }) => session.call(listStateEntries, { namespace: session.namespace, prefix, limit: pageSize, cursor }, signal),
    placeholderData: keepPreviousData,
    refetchInterval: 5000,
  })
  return (
    <div className="page">
      <div className="page-header">
        <h1>State</h1>
      </div>
      <form
        className="filters card"
        onSubmit={(event) => {
          event.preventDefault()
          setCursors([])
          navigate(hrefOf('/state', { prefix: draft }), { replace: true })
        }}
      >
        <div className="filter-row">
          <label className="field field-wide">
            <span>Key prefix</span>
            <input
              value={draft}
              placeholder="every key"
              onChange={(event) => setDraft(event.target.value)}
              spellCheck={false}
              className="mono"
            />
          </label>
          <div className="filter-buttons">
            <button className="button button-primary" type="submit">
              Browse
            </button>
          </div>
        </div>
      </form>
      {entries.isError && <ErrorNotice error={entries.error} />}
      <div className={selectedKey === undefined ? 'stack' : 'split'}>
        <div className="stack">
          <DataTable
            label="State entries"
            columns={columns}
            data={entries.data?.entries ?? noEntries}
            rowKey={(entry) => entry.key}
            rowHref={(entry) => hrefOf('/state', { prefix, key: entry.key })}
            empty={entries.isPending ? 'Loading…' : 'No entries with this prefix.'}
          />
          <div className="pager">
            <button className="button" disabled={cursors.length === 0} onClick={() => setCursors(cursors.slice(0, -1))}>
              ← Previous
            </button>
            <button
              className="button"
              disabled={!entries.data?.nextCursor}
              onClick={() => entries.data?.nextCursor && setCursors([...cursors, entries.data.nextCursor])}
            >
              Next →
            </button>
          </div>
        </div>
        {selectedKey !== undefined && (
          <EntryPanel entryKey={selectedKey} onClose={() => navigate(hrefOf('/state', { prefix }), { replace: true })} />
        )}
      </div>
    </div>
  )
}

const noEntries: StateEntry[] = []

/** One entry, read on its own (StateService.Get): its whole value, version and TTL. */
function EntryPanel(props: { entryKey: string; onClose: () => void }) {
  const session = useSession()
  const entry = useQuery({
    queryKey: ['state-entry', session.namespace, props.entryKey],
    queryFn: ({ signal }) => session.call(getStateEntry, { namespace: session.namespace, key: props.entryKey }, signal),
    refetchInterval: 5000,
  })
  const found = entry.data?.entry
  return (
    <section className="card entry-panel" aria-label="State entry">
      <div className="card-header">
        <h2 className="mono">{props.entryKey}</h2>
        <button className="icon-button" onClick={props.onClose} aria-label="Close">
          ×
        </button>
      </div>
      {entry.isError && <ErrorNotice error={entry.error} />}
      {entry.data && !found && <div className="muted">No such entry (it was deleted, or it expired).</div>}
      {found && (
        <>
          <dl className="facts">
            <div>
              <dt>Version</dt>
              <dd className="num">{found.version}</dd>
            </div>
            <div>
              <dt>TTL</dt>
              <dd>
                {found.expiresAt
                  ? `expires ${formatRelative(found.expiresAt)} (${formatPreciseTime(found.expiresAt)})`
                  : 'none: kept until deleted'}
              </dd>
            </div>
            <div>
              <dt>Updated</dt>
              <dd>{formatPreciseTime(found.updatedAt)}</dd>
            </div>
          </dl>
          <h3>Value</h3>
          <JsonBlock json={found.valueJson} label="Value" />
        </>
      )}
    </section>
  )
}
