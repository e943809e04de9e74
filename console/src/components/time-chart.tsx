import { useEffect, useRef } from 'react'
import uPlot from 'uplot'

/** One line or set of bars of a chart. */
export interface ChartSeries {
  label: string
  color: string
  values: Array<number | null>
}

/**
 * A small time-series chart (uPlot: canvas, a few dozen KiB, and fast with
 * many points). `times` are Unix seconds; values share one y axis, whose
 * ticks `formatValue` writes.
 */
export function TimeChart(props: {
  title: string
  times: number[]
  series: ChartSeries[]
  kind: 'bars' | 'line'
  height?: number
  formatValue?: (value: number) => string
  /** The x axis, in Unix seconds: the window the chart covers, whatever the data. */
  xRange: [number, number]
  /** The y axis goes at least this high (so a quiet queue's axis does not read 0.5 runs). */
  yMin?: number
}) {
  const container = useRef<HTMLDivElement>(null)
  const chart = useRef<uPlot | undefined>(undefined)
  const { kind, height = 160, formatValue = String, yMin = 1 } = props
  const range = useRef(props.xRange)
  range.current = props.xRange
  const seriesKey = props.series.map((series) => `${series.label}:${series.color}`).join('|')

  useEffect(() => {
    const element = container.current!
    const bars = uPlot.paths.bars!({ size: [0.9, 24], gap: 0 })
    const options: uPlot.Options = {
      width: element.clientWidth || 400,
      height,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: () => range.current },
        y: { range: (_, min, max) => [0, Math.max(max, min, yMin) * 1.1] },
      },
      axes: [
        { stroke: '#64748b', grid: { stroke: '#eef2f7' }, ticks: { stroke: '#e2e8f0' }, space: 80 },
        {
          stroke: '#64748b',
          grid: { stroke: '#eef2f7' },
          ticks: { stroke: '#e2e8f0' },
          size: 64,
          values: (_, ticks) => ticks.map(formatValue),
        },
      ],
      series: [
        {},
        ...props.series.map((series): uPlot.Series => ({
          label: series.label,
          stroke: series.color,
          width: kind === 'bars' ? 0 : 2,
          fill: kind === 'bars' ? series.color : `${series.color}1f`,
          paths: kind === 'bars' ? bars : undefined,
          // Points where a line has few values: a value alone draws no line.
          points: { show: kind === 'line' && series.values.filter((value) => value !== null).length < 30, size: 5 },
          value: (_: uPlot, value: number | null) => (value === null ? '—' : formatValue(value)),
        })),
      ],
    }
    chart.current = new uPlot(options, [props.times, ...props.series.map((series) => series.values)], element)
    const resize = new ResizeObserver(() => chart.current?.setSize({ width: element.clientWidth, height }))
    resize.observe(element)
    return () => {
      resize.disconnect()
      chart.current?.destroy()
      chart.current = undefined
    }
  }, [seriesKey, kind, height, yMin])

  useEffect(() => {
    chart.current?.setData([props.times, ...props.series.map((series) => series.values)])
  }, [props.times, props.series])

  return (
    <figure className="chart">
      <figcaption>{props.title}</figcaption>
      <div ref={container} />
    </figure>
  )
}
