import {
  type BulkAction,
  BulkActionKind,
  BulkActionStatus,
  type StartBulkActionResponse,
  bulkActionKindFromJSON,
} from '@stackshift/proto/operator-service'
import { useMutation, useQuery } from '@tanstack/react-query'
import { useState } from 'react'
import { getBulkAction, startBulkAction } from '../api/methods.js'
import { bulkKindLabels } from '../bulk-action-labels.js'
import { formatCount } from '../format.js'
import { type RunFilter, filtersBulkIgnores, runSelection } from '../run-filter.js'
import { useSession } from '../session.js'
import { Dialog } from './dialog.js'
import { ErrorNotice } from './error-notice.js'

/**
 * A bulk action over the runs the list's filter selects: count them first
 * (a dry run), then start; the server works through them in batches, and
 * the dialog follows its progress (GetBulkAction).
 */
export function BulkActionDialog(props: { filter: RunFilter; onClose: () => void }) {
  const session = useSession()
  const [kind, setKind] = useState(BulkActionKind.BULK_ACTION_KIND_CANCEL)
  const [fromStepId, setFromStepId] = useState('')
  // Relative ranges are anchored once, so the count and the action select the same runs.
  const [now] = useState(() => Date.now())
  const [counted, setCounted] = useState<StartBulkActionResponse | undefined>()
  const [started, setStarted] = useState<BulkAction | undefined>()
  const ignored = filtersBulkIgnores(props.filter)
  const request = (dryRun: boolean) => ({
    namespace: session.namespace,
    kind,
    selection: runSelection(props.filter, now),
    fromStepId: kind === BulkActionKind.BULK_ACTION_KIND_REPLAY ? fromStepId.trim() : '',
    dryRun,
  })
  const count = useMutation({
    mutationFn: () => session.call(startBulkAction, request(true)),
    onSuccess: (response) => setCounted(response),
  })
  const start = useMutation({
    mutationFn: () => session.call(startBulkAction, request(false)),
    onSuccess: (response) => setStarted(response.action),
  })
  const change = (apply: () => void) => {
    apply()
    setCounted(undefined)
  }
  const toHandle = counted ? counted.matched - counted.skipped : 0
  return (
    <Dialog title="Bulk action" onClose={props.onClose}>
      {started ? (
        <BulkProgress action={started} expected={counted?.matched} />
      ) : (
        <div className="stack">
          <p className="muted">
            Acts on every run the current filter selects{ignored.length > 0 ? '' : ', across all pages'}. Runs created after it starts are
            left alone.
          </p>
          {ignored.length > 0 && (
            <div className="notice notice-warning">
              A bulk action selects by queue, job, status, time and payload only: the {ignored.join(' and ')} filter is not applied.
            </div>
          )}
          <label className="field">
            <span>Action</span>
            <select value={kind} onChange={(event) => change(() => setKind(bulkActionKindFromJSON(Number(event.target.value))))}>
              <option value={BulkActionKind.BULK_ACTION_KIND_CANCEL}>Cancel unfinished runs</option>
              <option value={BulkActionKind.BULK_ACTION_KIND_RERUN}>Rerun with the same payload</option>
              <option value={BulkActionKind.BULK_ACTION_KIND_REPLAY}>Replay from a step</option>
            </select>
          </label>
          {kind === BulkActionKind.BULK_ACTION_KIND_REPLAY && (
            <label className="field">
              <span>From step</span>
              <input value={fromStepId} placeholder="step id" onChange={(event) => change(() => setFromStepId(event.target.value))} />
            </label>
          )}
          {count.isError && <ErrorNotice error={count.error} action="Count" />}
          {start.isError && <ErrorNotice error={start.error} action="Start" />}
          {counted && (
            <div className="notice notice-info" role="status">
              <strong>{formatCount(toHandle)}</strong> runs would be{' '}
              {bulkKindLabels[kind] === 'cancel' ? 'cancelled' : `${bulkKindLabels[kind]}ed`}
              {counted.skipped > 0 ? ` (${formatCount(counted.skipped)} of the ${formatCount(counted.matched)} selected are skipped)` : ''}.
            </div>
          )}
          <div className="dialog-actions">
            <button className="button" onClick={() => count.mutate()} disabled={count.isPending}>
              {count.isPending ? 'Counting…' : 'Count runs (dry run)'}
            </button>
            <button
              className="button button-danger"
              onClick={() => start.mutate()}
              disabled={!counted || toHandle === 0 || start.isPending}
              title={counted ? undefined : 'Count the runs first'}
            >
              Start {bulkKindLabels[kind]}
            </button>
          </div>
        </div>
      )}
    </Dialog>
  )
}

/** A bulk action's progress, asked again every second until it completes; `expected`: the runs the count found. */
export function BulkProgress(props: { action: BulkAction; expected?: number | undefined }) {
  const session = useSession()
  const polled = useQuery({
    queryKey: ['bulk-action', session.namespace, props.action.id],
    queryFn: ({ signal }) => session.call(getBulkAction, { namespace: session.namespace, id: props.action.id }, signal),
    refetchInterval: (query) => (query.state.data?.action?.status === BulkActionStatus.BULK_ACTION_STATUS_COMPLETED ? false : 1000),
  })
  const action = polled.data?.action ?? props.action
  const isDone = action.status === BulkActionStatus.BULK_ACTION_STATUS_COMPLETED
  return (
    <div className="stack" role="status" aria-label="Bulk action progress">
      <div className="progress-line">
        <span className={isDone ? 'badge badge-completed' : 'badge badge-running'}>{isDone ? 'completed' : 'running'}</span>
        <span>
          {bulkKindLabels[action.kind]}: <strong>{formatCount(action.handled)}</strong> handled, {formatCount(action.skipped)} skipped
        </span>
      </div>
      <div className={isDone ? 'progress progress-done' : props.expected ? 'progress' : 'progress progress-running'}>
        <div
          style={
            !isDone && props.expected
              ? { width: `${Math.min(100, ((action.handled + action.skipped) / props.expected) * 100)}%` }
              : undefined
          }
        />
      </div>
      <div className="muted small mono">{action.id}</div>
    </div>
  )
}
