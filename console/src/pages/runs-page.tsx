import { RunOrigin, type Run } from '@stackshift/proto/run'
import { keepPreviousData, useQuery } from '@tanstack/react-query'
import { createColumnHelper } from '@tanstack/react-table'
import { useState } from 'react'
import { listRuns } from '../api/methods.js'
import { BulkActionDialog } from '../components/bulk-action-dialog.js'
import { DataTable, type ListFeatures } from '../components/data-table.js'
import { ErrorNotice } from '../components/error-notice.js'
import { StatusBadge } from '../components/status-badge.js'
import { filterableStatuses, formatDuration, formatPreciseTime, formatTime, isFinished, runStatusLabels, shortId } from '../format.js'
import { Link, hrefOf, navigate, useLocation } from '../router.js'
import {
  type RunFilter,
  emptyFilter,
  filterFromQuery,
  filterToQuery,
  listRunsRequest,
  payloadMatchProblem,
  rangeOptions,
} from '../run-filter.js'
import { useSession } from '../session.js'

const pageSize = 50
/** How often the first page is asked again: new runs and status changes appear without a reload. */
const liveIntervalMs = 2000

const column = createColumnHelper<ListFeatures, Run>()
const columns = column.columns([
  column.accessor('id', {
    header: 'Run',
    cell: (info) => (
      <Link href={`/runs/${info.getValue()}`} className="mono" title={info.getValue()}>
        {shortId(info.getValue())}
      </Link>
    ),
  }),
  column.accessor('job', { header: 'Job', cell: (info) => <span className="strong">{info.getValue()}</span> }),
  column.accessor('queue', { header: 'Queue' }),
  column.accessor('status', {
    header: 'Status',
    cell: (info) => (
      <>
        <StatusBadge status={info.getValue()} />
        {info.row.original.flowWait && (
          <span className="flow-wait-mark small" title={info.row.original.flowWait.description}>
            {' '}
            held by a limit
          </span>
        )}
      </>
    ),
  }),
  column.display({
    id: 'attempts',
    header: 'Attempts',
    cell: (info) => (
      <span className="num">
        {info.row.original.attempts} / {info.row.original.maxAttempts}
      </span>
    ),
  }),
  column.accessor('createdAt', {
    header: 'Created',
    cell: (info) => <span title={formatPreciseTime(info.getValue())}>{formatTime(info.getValue())}</span>,
  }),
  column.display({ id: 'duration', header: 'Duration', cell: (info) => <span className="num">{runDuration(info.row.original)}</span> }),
  column.display({ id: 'origin', header: 'Origin', cell: (info) => <OriginCell run={info.row.original} /> }),
])

/** How long the run took, or has been running; blank before its first attempt. */
function runDuration(run: Run): string {
  if (!run.startedAt) return ''
  if (isFinished(run.status)) return run.finishedAt ? formatDuration(run.finishedAt.getTime() - run.startedAt.getTime()) : ''
  return `${formatDuration(Date.now() - run.startedAt.getTime())} so far`
}

function OriginCell(props: { run: Run }) {
  const { run } = props
  if (run.parentRunId) {
    return (
      <span className="muted small">
        child of{' '}
        <Link href={`/runs/${run.parentRunId}`} className="mono">
          {shortId(run.parentRunId)}
        </Link>
      </span>
    )
  }
  if (run.origin === RunOrigin.RUN_ORIGIN_UNSPECIFIED || !run.sourceRunId) return null
  const word = run.origin === RunOrigin.RUN_ORIGIN_REPLAY ? 'replay of' : 'rerun of'
  return (
    <span className="muted small">
      {word}{' '}
      <Link href={`/runs/${run.sourceRunId}`} className="mono">
        {shortId(run.sourceRunId)}
      </Link>
    </span>
  )
}

/**
 * Runs, newest first, filtered on the server (ListRuns), a page at a time by
 * cursor, so any number of runs can be paged through. The first page follows
 * new runs live.
 */
export function RunsPage() {
  const session = useSession()
  const { query } = useLocation()
  const filter = filterFromQuery(query)
  /** Cursors of the pages before the current one; empty on the first page. */
  const [cursors, setCursors] = useState<string[]>([])
  const [isBulkOpen, setBulkOpen] = useState(false)
  const cursor = cursors.at(-1) ?? ''
  const isFirstPage = cursors.length === 0
  const filterKey = query.toString()
  // Relative ranges ("last hour") are anchored when the filter is set, and again each time the list is asked for.
  const runs = useQuery({
    queryKey: ['runs', session.namespace, filterKey, cursor],
    queryFn: ({ signal }) =>
      session.call(listRuns, { ...listRunsRequest(filter, Date.now()), namespace: session.namespace, limit: pageSize, cursor }, signal),
    placeholderData: keepPreviousData,
    refetchInterval: isFirstPage ? liveIntervalMs : false,
  })

  const apply = (next: RunFilter) => {
    setCursors([])
    navigate(hrefOf('/runs', filterToQuery(next)), { replace: true })
  }

  return (
    <div className="page">
      <div className="page-header">
        <h1>Runs</h1>
        <div className="page-actions">
          <LiveIndicator isLive={isFirstPage} isFetching={runs.isFetching} />
          {session.canOperate && (
            <button className="button" onClick={() => setBulkOpen(true)}>
              Bulk action…
            </button>
          )}
        </div>
      </div>
      <FilterBar key={filterKey} filter={filter} onApply={apply} />
      {runs.isError && <ErrorNotice error={runs.error} />}
      <DataTable
        label="Runs"
        columns={columns}
        data={runs.data?.runs ?? noRuns}
        rowKey={(run) => run.id}
        rowHref={(run) => `/runs/${run.id}`}
        empty={runs.isPending ? 'Loading…' : 'No runs match.'}
      />
      <div className="pager">
        <span className="muted small">
          {runs.data ? `${runs.data.runs.length} runs on this page` : ''}
          {cursors.length > 0 ? ` · page ${cursors.length + 1}` : ''}
        </span>
        <button className="button" disabled={isFirstPage} onClick={() => setCursors(cursors.slice(0, -1))}>
          ← Newer
        </button>
        <button
          className="button"
          disabled={!runs.data?.nextCursor}
          onClick={() => runs.data?.nextCursor && setCursors([...cursors, runs.data.nextCursor])}
        >
          Older →
        </button>
      </div>
      {isBulkOpen && <BulkActionDialog filter={filter} onClose={() => setBulkOpen(false)} />}
    </div>
  )
}

const noRuns: Run[] = []

function LiveIndicator(props: { isLive: boolean; isFetching: boolean }) {
  return props.isLive ? (
    <span className="live" title="The first page is refreshed every 2 seconds">
      <span className={props.isFetching ? 'live-dot live-dot-active' : 'live-dot'} /> Live
    </span>
  ) : (
    <span className="live live-paused" title="Go back to the first page to follow new runs">
      Paused while paging
    </span>
  )
}

/** The filter's fields; typed ones apply on Enter or with Apply, choices at once. */
function FilterBar(props: { filter: RunFilter; onApply: (filter: RunFilter) => void }) {
  const [draft, setDraft] = useState(props.filter)
  const [isMoreOpen, setMoreOpen] = useState(
    Boolean(
      props.filter.runId ||
      props.filter.idempotencyKey ||
      props.filter.payloadMatch ||
      props.filter.sourceRunId ||
      props.filter.parentRunId,
    ),
  )
  const payloadProblem = payloadMatchProblem(draft.payloadMatch)
  const set = (name: keyof RunFilter, value: string, isImmediate = false) => {
    const next = { ...draft, [name]: value }
    setDraft(next)
    if (isImmediate) props.onApply(next)
  }
  const text = (name: keyof RunFilter, label: string, placeholder: string, className = '') => (
    <label className={`field ${className}`}>
      <span>{label}</span>
      <input value={draft[name]} placeholder={placeholder} spellCheck={false} onChange={(event) => set(name, event.target.value)} />
    </label>
  )
  const isFiltered = Object.values(props.filter).some(Boolean)
  return (
    <form
      className="filters card"
      aria-label="Filter runs"
      onSubmit={(event) => {
        event.preventDefault()
        if (!payloadProblem) props.onApply(draft)
      }}
    >
      <div className="filter-row">
        {text('queue', 'Queue', 'any')}
        {text('job', 'Job', 'any')}
        <label className="field">
          <span>Status</span>
          <select value={draft.status} onChange={(event) => set('status', event.target.value, true)}>
            <option value="">any</option>
            {filterableStatuses.map((status) => (
              <option key={status} value={runStatusLabels[status]}>
                {runStatusLabels[status]}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          <span>Created</span>
          <select value={draft.range} onChange={(event) => set('range', event.target.value, event.target.value !== 'custom')}>
            <option value="">any time</option>
            {rangeOptions.map((option) => (
              <option key={option.value} value={option.value}>
                {option.label.toLowerCase()}
              </option>
            ))}
            <option value="custom">between…</option>
          </select>
        </label>
        {draft.range === 'custom' && (
          <>
            <label className="field">
              <span>From</span>
              <input type="datetime-local" value={draft.after} onChange={(event) => set('after', event.target.value)} />
            </label>
            <label className="field">
              <span>To</span>
              <input type="datetime-local" value={draft.before} onChange={(event) => set('before', event.target.value)} />
            </label>
          </>
        )}
        <div className="filter-buttons">
          <button className="button button-primary" type="submit" disabled={Boolean(payloadProblem)}>
            Apply
          </button>
          <button className="link-button" type="button" onClick={() => setMoreOpen(!isMoreOpen)}>
            {isMoreOpen ? 'Fewer filters' : 'More filters'}
          </button>
          {isFiltered && (
            <button
              className="link-button"
              type="button"
              onClick={() => {
                setDraft(emptyFilter)
                props.onApply(emptyFilter)
              }}
            >
              Clear
            </button>
          )}
        </div>
      </div>
      {isMoreOpen && (
        <div className="filter-row">
          {text('runId', 'Run id', 'exact id', 'field-wide')}
          {text('idempotencyKey', 'Idempotency key', 'exact key')}
          {text('sourceRunId', 'Made from run', 'run id', 'field-wide')}
          {text('parentRunId', 'Child of run', 'run id', 'field-wide')}
          <label className={payloadProblem ? 'field field-wide field-invalid' : 'field field-wide'}>
            <span>Payload contains</span>
            <input
              value={draft.payloadMatch}
              placeholder='{"customerId": 42}'
              spellCheck={false}
              className="mono"
              onChange={(event) => set('payloadMatch', event.target.value)}
            />
            {payloadProblem && <small>payload {payloadProblem}</small>}
          </label>
        </div>
      )}
    </form>
  )
}
