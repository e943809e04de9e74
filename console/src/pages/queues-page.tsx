import type { QueueStats } from '@stackshift/proto/operator-service'
import { useQuery } from '@tanstack/react-query'
import { useMemo, useRef } from 'react'
import { getQueueStats } from '../api/methods.js'
import { ErrorNotice } from '../components/error-notice.js'
import { TimeChart } from '../components/time-chart.js'
import { formatCount, formatDuration } from '../format.js'
import { hrefOf, Link } from '../router.js'
import { useSession } from '../session.js'

const refreshMs = 5000
/** Depth samples kept per queue: ten minutes at one per refresh. */
const maxSamples = 120

const depthColors = { ready: '#2563eb', delayed: '#94a3b8', waiting: '#d97706', running: '#7c3aed' }

interface DepthSample {
  at: number
  ready: number
  delayed: number
  waiting: number
  running: number
}

/**
 * Each queue's depth now, how it moved while the page was open, and per
 * minute over the last hour how many runs finished and how long runs waited
 * to start (GetQueueStats).
 */
export function QueuesPage() {
  const session = useSession()
  const samples = useRef(new Map<string, DepthSample[]>())
  const stats = useQuery({
    queryKey: ['queue-stats', session.namespace],
    queryFn: async ({ signal }) => {
      const response = await session.call(getQueueStats, { namespace: session.namespace }, signal)
      const at = Math.floor(Date.now() / 1000)
      for (const queue of response.queues) {
        const kept = samples.current.get(queue.queue) ?? []
        kept.push({ at, ready: queue.ready, delayed: queue.delayed, waiting: queue.waiting, running: queue.running })
        samples.current.set(queue.queue, kept.slice(-maxSamples))
      }
      return response
    },
    refetchInterval: refreshMs,
  })
  const queues = stats.data?.queues ?? []
  return (
    <div className="page">
      <div className="page-header">
        <h1>Queues</h1>
        <span className="muted small">refreshed every {refreshMs / 1000} s</span>
      </div>
      {stats.isError && <ErrorNotice error={stats.error} />}
      {stats.data && queues.length === 0 && <div className="card muted">No queue has runs in this namespace.</div>}
      {queues.map((queue) => (
        <QueueCard key={queue.queue} queue={queue} samples={samples.current.get(queue.queue) ?? []} />
      ))}
    </div>
  )
}

function QueueCard(props: { queue: QueueStats; samples: DepthSample[] }) {
  const { queue } = props
  const total = queue.ready + queue.delayed + queue.waiting + queue.running
  const hour = useMemo(() => lastHour(queue), [queue])
  const depth = useMemo(() => depthSeries(props.samples), [props.samples, props.samples.length])
  const parts = (['ready', 'delayed', 'waiting', 'running'] as const).map((name) => ({ name, value: queue[name] }))
  return (
    <section className="card queue" aria-label={`Queue ${queue.queue}`}>
      <div className="card-header">
        <h2>
          <Link href={hrefOf('/runs', { queue: queue.queue })}>{queue.queue}</Link>
        </h2>
        <span className="muted small">
          {formatCount(hour.completed)} completed · {formatCount(hour.failed)} failed in the last hour
        </span>
      </div>
      <div className="depth">
        {parts.map((part) => (
          <div key={part.name} className="depth-figure">
            <span className="depth-swatch" style={{ background: depthColors[part.name] }} />
            <span className="depth-value">{formatCount(part.value)}</span>
            <span className="muted small">{part.name}</span>
          </div>
        ))}
      </div>
      <div className="depth-bar" aria-hidden="true">
        {total > 0 &&
          parts.map((part) =>
            part.value > 0 ? (
              <div
                key={part.name}
                style={{ flexGrow: part.value, background: depthColors[part.name] }}
                title={`${part.name}: ${part.value}`}
              />
            ) : null,
          )}
      </div>
      <div className="charts">
        <TimeChart title="Depth since this page opened" kind="line" times={depth.times} series={depth.series} xRange={depth.range} />
        <TimeChart title="Finished per minute" kind="bars" times={hour.times} series={hour.throughput} xRange={hour.range} />
        <TimeChart
          title="Mean wait to start (ready → started)"
          kind="line"
          times={hour.times}
          series={hour.latency}
          xRange={hour.range}
          yMin={10}
          formatValue={(value) => (value === 0 ? '0' : formatDuration(value))}
        />
      </div>
    </section>
  )
}

/** The last hour a minute at a time, with the minutes the server left out (no runs) as zeros. */
function lastHour(queue: QueueStats) {
  const byMinute = new Map(queue.minutes.map((minute) => [Math.floor((minute.minute?.getTime() ?? 0) / 60_000), minute]))
  const nowMinute = Math.floor(Date.now() / 60_000)
  const times: number[] = []
  const completed: number[] = []
  const failed: number[] = []
  const latency: Array<number | null> = []
  for (let minute = nowMinute - 59; minute <= nowMinute; minute++) {
    const point = byMinute.get(minute)
    times.push(minute * 60)
    completed.push(point?.completed ?? 0)
    failed.push(point?.failed ?? 0)
    latency.push(point && point.started > 0 ? point.meanStartLatencyMs : null)
  }
  return {
    times,
    // Half a minute either side, so the first and last bars are whole.
    range: [(nowMinute - 59) * 60 - 30, nowMinute * 60 + 30] as [number, number],
    completed: completed.reduce((sum, value) => sum + value, 0),
    failed: failed.reduce((sum, value) => sum + value, 0),
    // Stacked: the failed bar stands on the completed one (drawn first, to the sum; completed over it).
    throughput: [
      { label: 'failed', color: '#dc2626', values: completed.map((value, index) => value + failed[index]!) },
      { label: 'completed', color: '#16a34a', values: completed },
    ],
    latency: [{ label: 'mean wait', color: '#2563eb', values: latency }],
  }
}

function depthSeries(samples: DepthSample[]) {
  const last = samples.at(-1)?.at ?? Math.floor(Date.now() / 1000)
  return {
    // At least five minutes wide, so a few samples do not stretch across the axis.
    range: [Math.min(samples[0]?.at ?? last, last - 300), last] as [number, number],
    times: samples.map((sample) => sample.at),
    series: (['ready', 'delayed', 'waiting', 'running'] as const).map((name) => ({
      label: name,
      color: depthColors[name],
      values: samples.map((sample) => sample[name]),
    })),
  }
}
