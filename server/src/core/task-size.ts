import type { ClaimedRun } from './run.js'

/** Protobuf framing of one string field, memo entry part or trace-context part, at most: its tag and length prefix. */
const framingBytes = 6
/** The task's fixed fields (counters, timestamps, lease token) and the message around it, at most. */
const fixedBytes = 512

/**
 * Whether a claimed run, as one Task, fits in a message of `maxBytes`:
 * payload, memo (step ids and results), names and trace context as UTF-8,
 * each with its framing, plus the fixed fields. Cheap for the usual run: the
 * strings are measured in UTF-8 only when three bytes for each UTF-16 unit
 * (the most UTF-8 takes) could exceed `maxBytes`.
 */
export function taskFits(run: ClaimedRun, maxBytes: number): boolean {
  return taskBytes(run, (text) => text.length * 3) <= maxBytes || taskBytes(run, (text) => Buffer.byteLength(text)) <= maxBytes
}

/** The size of `run` as a Task, at most, with strings counted by `bytesOf`. */
export function taskBytes(run: ClaimedRun, bytesOf: (text: string) => number = (text) => Buffer.byteLength(text)): number {
  let bytes = fixedBytes + 5 * framingBytes + bytesOf(run.payloadJson) + bytesOf(run.id) + bytesOf(run.namespace)
  bytes += bytesOf(run.queue) + bytesOf(run.job)
  for (const step of run.memo) {
    bytes += 3 * framingBytes + bytesOf(step.stepId) + (step.resultJson === undefined ? 0 : bytesOf(step.resultJson))
  }
  for (const [key, value] of Object.entries(run.traceContext ?? {})) bytes += 3 * framingBytes + bytesOf(key) + bytesOf(value)
  return bytes
}
