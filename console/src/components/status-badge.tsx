import type { RunStatus } from '@stackshift/proto/run'
import { runStatusLabels } from '../format.js'

/** A run's status, coloured by what it means: done, failed, in progress, waiting. */
export function StatusBadge(props: { status: RunStatus }) {
  const label = runStatusLabels[props.status]
  return <span className={`badge badge-${label}`}>{label}</span>
}
