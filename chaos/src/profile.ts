/**
 * The timings of a chaos run. Two profiles: `long` (`npm run chaos -- --minutes N`),
 * for people, with PostgreSQL down for 45 s; and `short`, which the test
 * suite runs in two to three minutes, with every kind of fault at least
 * once (each failpoint once, the LISTEN connections ended twice).
 *
 * The lease must outlast the outage *plus* a heartbeat interval: workers
 * heartbeat every third of the lease, so when PostgreSQL goes away a lease
 * may have only two thirds of its length left. With a 60 s lease a 45 s
 * outage can expire leases whose last heartbeat was 15 s old (a quarter of
 * them) however well workers retry, so "an outage shorter than the lease
 * costs no attempt" could not hold. 90 s leaves 60 s, and 15 s to spare after
 * the outage for a retried heartbeat to land; the short profile keeps the
 * same margin with a 15 s outage and a 40 s lease.
 */
export interface Profile {
  name: 'short' | 'long'
  /** Long profile: faults are planned, and started, until this much time has passed (the short one injects a fixed list). */
  faultPhaseMs: number
  /** STACKSHIFT_LEASE_MS of the servers (workers take the server's lease). */
  leaseMs: number
  /** How long PostgreSQL stays down in a pg-outage. */
  outageMs: number
  /** How long a stopped worker stays stopped: past its lease, so its runs are reaped and run elsewhere meanwhile. */
  workerStopMs: number
  /** Pool exhaustion: how long it lasts, and how many callers wait on a lock at once. */
  exhaustionMs: number
  exhaustionCallers: number
  /** Quiet time before the first fault. */
  warmupMs: number
  /** Time between one fault's end and the next one's start: [min, max]; the min holds even when faults run late. */
  gapMs: readonly [number, number]
  /** Runs enqueued per second while faults are injected. */
  runsPerSecond: number
  /** One run in this many is waited for with WaitForRun. */
  waitSampleEvery: number
  /** After the faults: how long the runs may take to finish. */
  drainTimeoutMs: number
}

export function shortProfile(): Profile {
  const leaseMs = 40_000
  return {
    name: 'short',
    faultPhaseMs: 0,
    leaseMs,
    // Longer than everything an outage must outlast: the SDK's 10 s retry budget,
    // the pool's 10 s acquire timeout, two health probes (5 s each).
    outageMs: 15_000,
    workerStopMs: leaseMs + 5_000,
    exhaustionMs: 10_000,
    exhaustionCallers: 300,
    warmupMs: 5_000,
    gapMs: [3_000, 4_000],
    runsPerSecond: 4,
    waitSampleEvery: 3,
    drainTimeoutMs: 120_000,
  }
}

export function longProfile(minutes: number): Profile {
  const leaseMs = 90_000
  return {
    name: 'long',
    faultPhaseMs: minutes * 60_000,
    leaseMs,
    outageMs: 45_000,
    workerStopMs: leaseMs + 10_000,
    exhaustionMs: 20_000,
    exhaustionCallers: 400,
    warmupMs: 15_000,
    gapMs: [5_000, 20_000],
    runsPerSecond: 5,
    waitSampleEvery: 4,
    drainTimeoutMs: 300_000,
  }
}
