import { randomFillSync } from 'node:crypto'

// One call into the random source fills ids for a while; per-id calls cost
// more than the rest of an enqueue.
const randomPool = Buffer.alloc(16 * 1024)
let randomOffset = randomPool.length

function takeRandomBytes(count: number): Buffer {
  if (randomOffset + count > randomPool.length) {
    randomFillSync(randomPool)
    randomOffset = 0
  }
  const bytes = randomPool.subarray(randomOffset, randomOffset + count)
  randomOffset += count
  return bytes
}

// Ids made in one millisecond take a counter (RFC 9562, method 1), so the
// runs of one batch sort, and are claimed, in the order they were enqueued.
let lastMs = -1
let sequence = 0
const sequenceMax = 0xfff

/**
 * A version 7 UUID: 48 bits of Unix milliseconds, a 12-bit counter, then
 * random bits. Run ids sort by creation time, and within this process strictly
 * increase, so new rows land at the right edge of the primary-key index (good
 * cache locality on insert) and an id range is a time range (retention
 * deletes by id without another index).
 */
export function newRunId(nowMs: number = Date.now()): string {
  let ms = nowMs
  // A clock that stepped back a little (or a counter that ran out) keeps counting on the last millisecond.
  if (ms <= lastMs && lastMs - ms < 1000) {
    ms = lastMs
    sequence++
    if (sequence > sequenceMax) {
      ms = lastMs + 1
      sequence = 0
    }
  } else {
    // A new millisecond starts the counter at a random point of its lower half, leaving room to count.
    sequence = takeRandomBytes(2).readUInt16BE(0) & 0x7ff
  }
  lastMs = ms
  const bytes = Buffer.allocUnsafe(16)
  takeRandomBytes(8).copy(bytes, 8)
  writeTimestamp(bytes, ms)
  bytes[6] = 0x70 | (sequence >> 8)
  bytes[7] = sequence & 0xff
  bytes[8] = (bytes[8]! & 0x3f) | 0x80
  return formatUuid(bytes)
}

/** The smallest version 7 UUID for the given instant: every id created at or after it sorts above. */
export function runIdFloor(instantMs: number): string {
  const bytes = Buffer.alloc(16)
  writeTimestamp(bytes, Math.max(0, instantMs))
  bytes[6] = 0x70
  bytes[8] = 0x80
  return formatUuid(bytes)
}

function writeTimestamp(bytes: Buffer, ms: number): void {
  bytes.writeUIntBE(ms, 0, 6)
}

function formatUuid(bytes: Buffer): string {
  const hex = bytes.toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** True when `value` has the textual form of a UUID (any version). */
export function isUuid(value: string): boolean {
  return uuidPattern.test(value)
}

/** The creation time (Unix ms) a version 7 run id carries. */
export function runIdTime(runId: string): number {
  return Number.parseInt(runId.slice(0, 8) + runId.slice(9, 13), 16)
}
