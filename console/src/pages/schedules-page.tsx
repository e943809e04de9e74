import { type Schedule, ScheduleOverlapPolicy, type ScheduleRun } from '@stackshift/proto/schedule-service'
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { listSchedules, pauseSchedule, resumeSchedule, triggerSchedule } from '../api/methods.js'
import { ErrorNotice } from '../components/error-notice.js'
import { StatusBadge } from '../components/status-badge.js'
import { formatDuration, formatPreciseTime, formatTime } from '../format.js'
import { Link, navigate } from '../router.js'
import { useSession } from '../session.js'

const overlapLabels: Record<ScheduleOverlapPolicy, string> = {
  [ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED]: 'skip',
  [ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_SKIP]: 'skip',
  [ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE]: 'buffer one',
  [ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_ALLOW]: 'allow',
  [ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_CANCEL_PREVIOUS]: 'cancel previous',
  [ScheduleOverlapPolicy.UNRECOGNIZED]: 'unknown',
}

/** A tick as the schedule's cron expression reads it: the wall time in its zone. */
function formatInZone(tick: Date, timezone: string): string {
  const wallTime = new Intl.DateTimeFormat(undefined, { timeZone: timezone, dateStyle: 'medium', timeStyle: 'short' }).format(tick)
  return `${wallTime} in ${timezone}`
}

/** A schedule's last runs, newest first, each linking to its run. */
function RecentRuns(props: { runs: ScheduleRun[] }) {
  if (props.runs.length === 0) return <span className="muted small">none yet</span>
  return (
    <ul className="schedule-runs">
      {props.runs.map((run) => (
        <li key={run.runId}>
          <StatusBadge status={run.status} />{' '}
          <Link href={`/runs/${encodeURIComponent(run.runId)}`} className="small" title={formatPreciseTime(run.scheduledAt)}>
            {formatTime(run.scheduledAt)}
          </Link>
        </li>
      ))}
    </ul>
  )
}

/** One schedule: what it runs, when it fires next, what it ran last, and its actions. */
function ScheduleCard(props: { schedule: Schedule; canOperate: boolean }) {
  const session = useSession()
  const queryClient = useQueryClient()
  const { schedule } = props
  const definition = schedule.definition!
  const request = { namespace: session.namespace, scheduleId: definition.id }
  const refresh = () => queryClient.invalidateQueries({ queryKey: ['schedules', session.namespace] })
  const pause = useMutation({ mutationFn: () => session.call(pauseSchedule, request), onSuccess: refresh })
  const resume = useMutation({ mutationFn: () => session.call(resumeSchedule, request), onSuccess: refresh })
  const trigger = useMutation({
    mutationFn: () => session.call(triggerSchedule, request),
    onSuccess: async (response) => {
      await refresh()
      if (response.run) navigate(`/runs/${encodeURIComponent(response.run.id)}`)
    },
  })
  const failed = [pause, resume, trigger].find((mutation) => mutation.isError)
  return (
    <section className="card schedule" aria-label={`Schedule ${definition.id}`}>
      <div className="schedule-head">
        <h2 className="mono">{definition.id}</h2>
        {schedule.isPaused ? <span className="badge badge-cancelled">paused</span> : <span className="badge badge-running">active</span>}
        {props.canOperate && (
          <div className="schedule-actions">
            {schedule.isPaused ? (
              <button className="button" onClick={() => resume.mutate()} disabled={resume.isPending}>
                Resume
              </button>
            ) : (
              <button className="button" onClick={() => pause.mutate()} disabled={pause.isPending}>
                Pause
              </button>
            )}
            <button className="button button-primary" onClick={() => trigger.mutate()} disabled={trigger.isPending}>
              Trigger now
            </button>
          </div>
        )}
      </div>
      <dl className="schedule-facts">
        <dt>Cron</dt>
        <dd>
          <span className="mono">{definition.cron}</span> <span className="muted">({definition.timezone})</span>
        </dd>
        <dt>Runs</dt>
        <dd>
          <span className="mono">{definition.job}</span> on <span className="mono">{definition.queue}</span>
        </dd>
        <dt>Overlap</dt>
        <dd>{overlapLabels[definition.overlap]}</dd>
        <dt>Catch-up</dt>
        <dd>{formatDuration(definition.catchupWindowMs)}</dd>
      </dl>
      <div className="schedule-columns">
        <div>
          <h3>{schedule.isPaused ? 'Would fire, if resumed' : 'Next fire times'}</h3>
          <ol className="schedule-ticks">
            {schedule.nextFireTimes.map((tick) => (
              <li key={tick.getTime()} title={`${formatPreciseTime(tick)} here; ${formatInZone(tick, definition.timezone)}`}>
                {formatTime(tick)}
              </li>
            ))}
          </ol>
          {schedule.bufferedTickAt && <p className="small">Waiting to fire: {formatTime(schedule.bufferedTickAt)}</p>}
        </div>
        <div>
          <h3>Last runs</h3>
          <RecentRuns runs={schedule.recentRuns} />
        </div>
      </div>
      {failed?.error && <ErrorNotice error={failed.error} />}
    </section>
  )
}

/** The namespace's schedules (ListSchedules): next fire times, paused state, last runs, and pause, resume and trigger. */
export function SchedulesPage() {
  const session = useSession()
  const schedules = useQuery({
    queryKey: ['schedules', session.namespace],
    queryFn: ({ signal }) => session.call(listSchedules, { namespace: session.namespace, limit: 500, cursor: '' }, signal),
    refetchInterval: 3000,
  })
  const list = schedules.data?.schedules ?? noSchedules
  return (
    <div className="page">
      <div className="page-header">
        <h1>Schedules</h1>
        <span className="muted">
          {list.length} schedule{list.length === 1 ? '' : 's'} · {list.filter((schedule) => schedule.isPaused).length} paused
        </span>
      </div>
      {schedules.isError && <ErrorNotice error={schedules.error} />}
      {list.length === 0 && (
        <div className="empty">
          <p>{schedules.isPending ? 'Loading…' : 'No schedule in this namespace. Create one with stackshift.schedules.create().'}</p>
        </div>
      )}
      <div className="schedule-list">
        {list.map((schedule) => (
          <ScheduleCard key={schedule.definition!.id} schedule={schedule} canOperate={session.canOperate} />
        ))}
      </div>
    </div>
  )
}

const noSchedules: Schedule[] = []
