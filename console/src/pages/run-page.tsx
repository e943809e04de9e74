import { type Run, RunOrigin, RunStatus, type Step, StepKind, StepStatus } from '@stackshift/proto/run'
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { type ReactNode, useEffect, useState } from 'react'
import { cancelRun, getRun, listRuns, replayRun, rerunRun } from '../api/methods.js'
import { Dialog } from '../components/dialog.js'
import { ErrorNotice } from '../components/error-notice.js'
import { JsonBlock } from '../components/json-block.js'
import { StatusBadge } from '../components/status-badge.js'
import { Timeline, attemptCount } from '../components/timeline.js'
import { formatDuration, formatPreciseTime, formatTime, isFinished, prettyJson, shortId, traceIdOf } from '../format.js'
import { traceLink, usePageConfig } from '../page-config.js'
import { Link, hrefOf, navigate } from '../router.js'
import { useSession } from '../session.js'

/** How often an unfinished run is asked again. */
const liveIntervalMs = 1500

/** One run: what it is, what it did (the timeline), and what an operator can do with it. */
export function RunPage(props: { runId: string }) {
  const session = useSession()
  const queryClient = useQueryClient()
  const runQuery = useQuery({
    queryKey: ['run', session.namespace, props.runId],
    queryFn: ({ signal }) => session.call(getRun, { namespace: session.namespace, runId: props.runId }, signal),
    refetchInterval: (query) => {
      const status = query.state.data?.run?.status
      return status !== undefined && isFinished(status) ? false : liveIntervalMs
    },
  })
  const [dialog, setDialog] = useState<'cancel' | 'rerun' | { replayFrom: Step } | undefined>()
  const nowMs = useNow(runQuery.data?.run && !isFinished(runQuery.data.run.status))

  if (runQuery.isPending) return <div className="page muted">Loading…</div>
  if (runQuery.isError) {
    return (
      <div className="page">
        <Breadcrumb runId={props.runId} />
        <ErrorNotice error={runQuery.error} />
      </div>
    )
  }
  const run = runQuery.data.run!
  const refresh = () => queryClient.invalidateQueries({ queryKey: ['run', session.namespace, props.runId] })
  const stateSteps = run.steps.filter((step) => step.kind === StepKind.STEP_KIND_STATE)
  return (
    <div className="page">
      <Breadcrumb runId={run.id} />
      <div className="page-header">
        <div className="title-block">
          <h1>
            {run.job} <StatusBadge status={run.status} />
          </h1>
          <div className="muted mono small">{run.id}</div>
        </div>
        {session.canOperate && (
          <div className="page-actions">
            {!isFinished(run.status) && (
              <button className="button button-danger" onClick={() => setDialog('cancel')}>
                Cancel run
              </button>
            )}
            <button className="button" onClick={() => setDialog('rerun')}>
              Rerun…
            </button>
          </div>
        )}
      </div>
      <div className="grid-2">
        <section className="card">
          <h2>Summary</h2>
          <Summary run={run} nowMs={nowMs} />
        </section>
        <section className="card">
          <h2>{run.status === RunStatus.RUN_STATUS_FAILED || (run.error && !run.resultJson) ? 'Error' : 'Result'}</h2>
          <Outcome run={run} />
          <h2 className="section-gap">Payload</h2>
          <JsonBlock json={run.payloadJson} label="Payload" empty="null" />
        </section>
      </div>
      <section className="card">
        <div className="card-header">
          <h2>Timeline</h2>
          <span className="muted small">
            {attemptCount(run)} attempt{attemptCount(run) === 1 ? '' : 's'} · {run.steps.length} step{run.steps.length === 1 ? '' : 's'}
          </span>
        </div>
        <Timeline run={run} nowMs={nowMs} onReplay={session.canOperate ? (step) => setDialog({ replayFrom: step }) : undefined} />
      </section>
      {run.children.length > 0 && (
        <section className="card">
          <div className="card-header">
            <h2>Child runs</h2>
            <Link href={hrefOf('/runs', { parent: run.id })} className="small">
              all in the runs list →
            </Link>
          </div>
          <ChildRuns run={run} />
        </section>
      )}
      {stateSteps.length > 0 && (
        <section className="card">
          <h2>State operations</h2>
          <StateOperations steps={stateSteps} />
        </section>
      )}
      <RelatedRuns run={run} />
      {dialog === 'cancel' && <CancelDialog run={run} onClose={() => setDialog(undefined)} onDone={refresh} />}
      {dialog === 'rerun' && <RerunDialog run={run} onClose={() => setDialog(undefined)} />}
      {typeof dialog === 'object' && <ReplayDialog run={run} step={dialog.replayFrom} onClose={() => setDialog(undefined)} />}
    </div>
  )
}

/** The current time, ticking each second while `isTicking` (an unfinished run's bars grow). */
function useNow(isTicking: boolean | undefined): number {
  const [now, setNow] = useState(Date.now)
  useEffect(() => {
    if (!isTicking) return
    const timer = setInterval(() => setNow(Date.now()), 1000)
    return () => clearInterval(timer)
  }, [isTicking])
  return isTicking ? now : Date.now()
}

function Breadcrumb(props: { runId: string }) {
  return (
    <nav className="breadcrumb" aria-label="Breadcrumb">
      <Link href="/runs">Runs</Link> <span>/</span> <span className="mono">{shortId(props.runId)}</span>
    </nav>
  )
}

function Summary(props: { run: Run; nowMs: number }) {
  const { run } = props
  const config = usePageConfig()
  const traceId = traceIdOf(run.traceContext)
  const traceHref = traceId ? traceLink(config, traceId) : undefined
  const duration =
    run.startedAt && (run.finishedAt ?? !isFinished(run.status))
      ? formatDuration((run.finishedAt?.getTime() ?? props.nowMs) - run.createdAt!.getTime())
      : undefined
  const rows: Array<[string, ReactNode]> = [
    ['Queue', run.queue],
    ['Namespace', run.namespace],
    ['Attempts', `${run.attempts} of ${run.maxAttempts}`],
    ['Priority', String(run.priority)],
    ['Created', <Instant key="created" date={run.createdAt} />],
    ['Ready at', <Instant key="ready" date={run.availableAt} />],
    ['Started', <Instant key="started" date={run.startedAt} />],
    ['Finished', <Instant key="finished" date={run.finishedAt} />],
    ['Total time', duration ? `${duration}${run.finishedAt ? '' : ' so far'}` : '—'],
    ['Idempotency key', run.idempotencyKey ? <span className="mono">{run.idempotencyKey}</span> : '—'],
    [
      'Trace',
      traceId ? (
        traceHref ? (
          <a className="mono" href={traceHref} target="_blank" rel="noreferrer noopener">
            {traceId} ↗
          </a>
        ) : (
          <span className="mono">{traceId}</span>
        )
      ) : (
        '—'
      ),
    ],
  ]
  if (run.parentRunId) {
    rows.push([
      'Parent',
      <span key="parent">
        <Link href={`/runs/${run.parentRunId}`} className="mono">
          {shortId(run.parentRunId)}
        </Link>{' '}
        step <span className="mono">{run.parentStepId}</span>
      </span>,
    ])
  }
  if (run.concurrencyKey !== undefined)
    rows.push([
      'Flow key',
      <span key="key" className="mono">
        {run.concurrencyKey || '(shared)'}
      </span>,
    ])
  if (run.flowWait)
    rows.push([
      'Held back',
      <span key="wait" className="flow-wait">
        {run.flowWait.description}
      </span>,
    ])
  if (run.origin !== RunOrigin.RUN_ORIGIN_UNSPECIFIED && run.sourceRunId) {
    rows.push([
      run.origin === RunOrigin.RUN_ORIGIN_REPLAY ? 'Replay of' : 'Rerun of',
      <span key="source">
        <Link href={`/runs/${run.sourceRunId}`} className="mono">
          {shortId(run.sourceRunId)}
        </Link>
        {run.replayedFromStepId && (
          <>
            {' '}
            from step <span className="mono">{run.replayedFromStepId}</span>
          </>
        )}
      </span>,
    ])
  }
  return (
    <dl className="facts">
      {rows.map(([label, value]) => (
        <div key={label}>
          <dt>{label}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  )
}

function Instant(props: { date: Date | undefined }) {
  return props.date ? <span title={formatPreciseTime(props.date)}>{formatTime(props.date)}</span> : <>—</>
}

/** The result of a completed run, or the error of a failed one (with its stack). */
function Outcome(props: { run: Run }) {
  const { run } = props
  if (run.status === RunStatus.RUN_STATUS_COMPLETED)
    return <JsonBlock json={run.resultJson} label="Result" empty="The job returned nothing." />
  if (run.error && (run.error.name || run.error.message)) {
    return (
      <div className="error-box">
        <div className="error-title">
          <span className="strong">{run.error.name || 'Error'}</span>: {run.error.message}
        </div>
        {run.error.stack && <pre className="code code-error">{run.error.stack}</pre>}
        {!isFinished(run.status) && <div className="muted small">The last failed attempt's error; the run is retrying.</div>}
      </div>
    )
  }
  return <div className="muted">{isFinished(run.status) ? 'None.' : 'Not finished yet.'}</div>
}

/** The runs this run started with step.invoke, each with its step and status. */
function ChildRuns(props: { run: Run }) {
  return (
    <div className="table-wrap">
      <table className="table" aria-label="Child runs">
        <thead>
          <tr>
            <th>Run</th>
            <th>Step</th>
            <th>Job</th>
            <th>Queue</th>
            <th>Status</th>
          </tr>
        </thead>
        <tbody>
          {props.run.children.map((child) => (
            <tr key={child.runId}>
              <td>
                <Link href={`/runs/${child.runId}`} className="mono">
                  {shortId(child.runId)}
                </Link>
              </td>
              <td className="mono">{child.stepId}</td>
              <td>{child.job}</td>
              <td>{child.queue}</td>
              <td>
                <StatusBadge status={child.status} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

function StateOperations(props: { steps: Step[] }) {
  return (
    <div className="table-wrap">
      <table className="table" aria-label="State operations">
        <thead>
          <tr>
            <th>Operation</th>
            <th>Attempt</th>
            <th>Recorded</th>
            <th>Result</th>
          </tr>
        </thead>
        <tbody>
          {props.steps.map((step) => (
            <tr key={`${step.id}-${step.attempt}`}>
              <td className="mono">{step.id}</td>
              <td className="num">{step.attempt}</td>
              <td>{formatTime(step.finishedAt)}</td>
              <td className="mono small truncate" title={step.resultJson}>
                {step.resultJson ?? ''}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

/** Runs made from this one: reruns and replays (ListRuns by source_run_id). */
function RelatedRuns(props: { run: Run }) {
  const session = useSession()
  const made = useQuery({
    queryKey: ['runs-from', session.namespace, props.run.id],
    queryFn: ({ signal }) => session.call(listRuns, { namespace: session.namespace, sourceRunId: props.run.id, limit: 20 }, signal),
    refetchInterval: 3000,
  })
  const runs = made.data?.runs ?? []
  if (runs.length === 0) return null
  return (
    <section className="card">
      <div className="card-header">
        <h2>Runs made from this run</h2>
        <Link href={hrefOf('/runs', { source: props.run.id })} className="small">
          all in the runs list →
        </Link>
      </div>
      <ul className="related">
        {runs.map((run) => (
          <li key={run.id}>
            <StatusBadge status={run.status} />
            <Link href={`/runs/${run.id}`} className="mono">
              {shortId(run.id)}
            </Link>
            <span className="muted small">
              {run.origin === RunOrigin.RUN_ORIGIN_REPLAY ? `replay from step ${run.replayedFromStepId || '(start)'}` : 'rerun'} ·{' '}
              {formatTime(run.createdAt)}
            </span>
          </li>
        ))}
      </ul>
    </section>
  )
}

function CancelDialog(props: { run: Run; onClose: () => void; onDone: () => Promise<void> }) {
  const session = useSession()
  const [reason, setReason] = useState('')
  const cancel = useMutation({
    mutationFn: () => session.call(cancelRun, { namespace: session.namespace, runId: props.run.id, reason: reason.trim() }),
    onSuccess: async () => {
      await props.onDone()
      props.onClose()
    },
  })
  return (
    <Dialog title="Cancel run" onClose={props.onClose}>
      <div className="stack">
        <p>
          Cancelling ends the run now{props.run.status === RunStatus.RUN_STATUS_RUNNING ? ': its worker is told to stop' : ''}. It cannot be
          resumed, but it can be rerun.
          {props.run.children.some((child) => !isFinished(child.status)) && ' Its unfinished child runs are cancelled with it.'}
        </p>
        <label className="field">
          <span>Reason (stored as the run's error)</span>
          <input value={reason} onChange={(event) => setReason(event.target.value)} placeholder="optional" />
        </label>
        {cancel.isError && <ErrorNotice error={cancel.error} action="Cancel" />}
        <div className="dialog-actions">
          <button className="button" onClick={props.onClose}>
            Keep it
          </button>
          <button className="button button-danger" onClick={() => cancel.mutate()} disabled={cancel.isPending}>
            Cancel run
          </button>
        </div>
      </div>
    </Dialog>
  )
}

/** Reruns the run, with its payload or an edited one; opens the new run. */
function RerunDialog(props: { run: Run; onClose: () => void }) {
  const session = useSession()
  const original = prettyJson(props.run.payloadJson) || 'null'
  const [payload, setPayload] = useState(original)
  const problem = jsonProblem(payload)
  const rerun = useMutation({
    mutationFn: () =>
      session.call(rerunRun, {
        namespace: session.namespace,
        runId: props.run.id,
        // Unchanged: the source's payload exactly as stored, not as re-indented here.
        payloadJson: payload === original ? undefined : payload,
      }),
    onSuccess: (response) => navigate(`/runs/${response.run!.id}`),
  })
  return (
    <Dialog title="Rerun" onClose={props.onClose} wide>
      <div className="stack">
        <p>
          A new run of <strong>{props.run.job}</strong> on queue <strong>{props.run.queue}</strong>, from the start. This run is left as it
          is.
        </p>
        <label className={problem ? 'field field-invalid' : 'field'}>
          <span>Payload</span>
          <textarea className="mono" rows={12} value={payload} spellCheck={false} onChange={(event) => setPayload(event.target.value)} />
          {problem && <small>{problem}</small>}
        </label>
        {rerun.isError && <ErrorNotice error={rerun.error} action="Rerun" />}
        <div className="dialog-actions">
          <button className="button" onClick={props.onClose}>
            Close
          </button>
          <button className="button button-primary" onClick={() => rerun.mutate()} disabled={Boolean(problem) || rerun.isPending}>
            {payload === original ? 'Rerun' : 'Rerun with this payload'}
          </button>
        </div>
      </div>
    </Dialog>
  )
}

/** Replays the run from a step: earlier steps are kept in the new run's memo; opens the new run. */
function ReplayDialog(props: { run: Run; step: Step; onClose: () => void }) {
  const session = useSession()
  const index = props.run.steps.indexOf(props.step)
  const kept = props.run.steps.slice(0, index).filter((step) => step.status === StepStatus.STEP_STATUS_COMPLETED)
  const replay = useMutation({
    mutationFn: () => session.call(replayRun, { namespace: session.namespace, runId: props.run.id, fromStepId: props.step.id }),
    onSuccess: (response) => navigate(`/runs/${response.run!.id}`),
  })
  return (
    <Dialog title={`Replay from ${props.step.id}`} onClose={props.onClose}>
      <div className="stack">
        <p>
          A new run with the same payload. The steps completed before <span className="mono">{props.step.id}</span> are kept and not run
          again
          {kept.length > 0 ? <> ({kept.map((step) => step.id).join(', ')})</> : null}; <span className="mono">{props.step.id}</span> and
          what follows it run again. This run is left as it is.
        </p>
        {replay.isError && <ErrorNotice error={replay.error} action="Replay" />}
        <div className="dialog-actions">
          <button className="button" onClick={props.onClose}>
            Close
          </button>
          <button className="button button-primary" onClick={() => replay.mutate()} disabled={replay.isPending}>
            Replay
          </button>
        </div>
      </div>
    </Dialog>
  )
}

function jsonProblem(text: string): string | undefined {
  try {
    JSON.parse(text)
    return undefined
  } catch (error) {
    return `not JSON: ${error instanceof Error ? error.message : String(error)}`
  }
}
