import type { RunStatus } from './run.js'

/** What a bulk action does to each run it selects. */
export type BulkActionKind = 'cancel' | 'rerun' | 'replay'

/** Which runs a bulk action selects (as ListRuns filters them); unset fields match every run. */
export interface RunSelection {
  queue: string | undefined
  job: string | undefined
  status: RunStatus | undefined
  createdAfter: Date | undefined
  createdBefore: Date | undefined
  /** JSON text of an object the payload must contain. */
  payloadMatchJson: string | undefined
}

/** A bulk action and its progress. */
export interface BulkActionRecord {
  id: string
  namespace: string
  kind: BulkActionKind
  selection: RunSelection
  /** For a replay: the step; empty otherwise. */
  fromStepId: string
  status: 'running' | 'completed'
  /** Runs selected are those with ids below this one: runs created after the action started are never selected. */
  idCeiling: string
  /** The last run handled, newest first; undefined before the first batch. */
  cursor: string | undefined
  handled: number
  skipped: number
  createdAt: Date
  updatedAt: Date
  finishedAt: Date | undefined
}
