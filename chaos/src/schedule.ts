import { type FailpointName, failpointNames } from '@stackshift/server'
import type { Profile } from './profile.js'
import { Random } from './random.js'

/** Three workers, two servers: worker i connects to server i % 2 (so server 0 has two workers). */
export const workerCount = 3
export const serverCount = 2
export const serverOfWorker = (worker: number): number => worker % serverCount

/**
 * One fault, `atMs` after the workload started. Every fault but worker-stop
 * runs alone: the next starts once it is over (and the planned gap has
 * passed). Worker stops last longer than a lease and overlap the others.
 */
export type Fault =
  /** SIGKILL a worker (most of the time in the middle of a step); restart it a second later. */
  | { kind: 'worker-kill'; atMs: number; worker: number }
  /** SIGSTOP a worker for longer than its lease, then SIGCONT: its late writes must be refused. */
  | { kind: 'worker-stop'; atMs: number; worker: number; durationMs: number }
  /** SIGKILL a server; restart it a second later. */
  | { kind: 'server-kill'; atMs: number; server: number }
  /** SIGKILL a server, restart it with a failpoint armed, let it kill itself there, restart it clean. */
  | { kind: 'server-failpoint'; atMs: number; server: number; failpoint: FailpointName }
  /** pg_ctl restart -m fast. */
  | { kind: 'pg-restart'; atMs: number }
  /** pg_ctl stop -m fast; `durationMs` later pg_ctl start. */
  | { kind: 'pg-outage'; atMs: number; durationMs: number }
  /** pg_terminate_backend on every LISTEN connection (application_name stackshift-listener). */
  | { kind: 'listener-kill'; atMs: number }
  /** A separate client keeps `callers` lock waits polling one server, for `durationMs`. */
  | { kind: 'pool-exhaustion'; atMs: number; server: number; durationMs: number; callers: number }

export type FaultKind = Fault['kind']

export const faultKinds: readonly FaultKind[] = [
  'worker-kill',
  'worker-stop',
  'server-kill',
  'server-failpoint',
  'pg-restart',
  'pg-outage',
  'listener-kill',
  'pool-exhaustion',
]

/**
 * Failpoints are armed on server 0, which has two workers: one of them may be
 * stopped, and the other still brings it step results and completions.
 */
const failpointServer = 0

/** How often each kind comes up in the long profile, once every kind has come up once. */
const longWeights: ReadonlyArray<[Exclude<FaultKind, 'worker-stop'>, number]> = [
  ['worker-kill', 4],
  ['server-kill', 2],
  ['server-failpoint', 3],
  ['pg-restart', 1],
  ['pg-outage', 1],
  ['listener-kill', 2],
  ['pool-exhaustion', 1],
]

/**
 * About how long a fault keeps the system busy before the next may start, in
 * ms, as measured on two busy cores (a server takes several seconds to start;
 * a failpoint costs two starts). The runner waits for the real end anyway.
 */
function expectedSpanMs(fault: Fault): number {
  switch (fault.kind) {
    case 'worker-kill':
      return 3_000
    case 'server-kill':
      return 12_000
    case 'server-failpoint':
      return 20_000
    case 'pg-restart':
      return 4_000
    case 'pg-outage':
      // Then a few seconds until health says SERVING again.
      return fault.durationMs + 6_000
    case 'listener-kill':
      return 1_000
    case 'pool-exhaustion':
      return fault.durationMs + 3_000
    case 'worker-stop':
      return fault.durationMs
  }
}

/**
 * The faults of a run, a function of the profile and the seed alone (the same
 * seed gives the same schedule). Every kind comes first, each failpoint once,
 * in a shuffled order (the short profile ends the LISTEN connections twice,
 * and stops there); the long profile then draws by weight until its time is
 * planned. Each comes after a random gap; worker stops are placed on their
 * own timeline, one at a time, and a worker kill never picks the stopped
 * worker.
 */
export function planFaults(profile: Profile, seed: number): Fault[] {
  const random = new Random(seed)
  const order = random.fork()
  const timing = random.fork()
  const targets = random.fork()

  type Kind = Exclude<FaultKind, 'worker-stop'>
  const everyKindOnce = (failpoints: readonly FailpointName[]): Array<Kind | FailpointName> => [
    'worker-kill',
    'server-kill',
    ...failpoints,
    'pg-restart',
    'pg-outage',
    'listener-kill',
    'pool-exhaustion',
  ]
  const first: Array<Kind | FailpointName> =
    profile.name === 'short'
      ? order.shuffle<Kind | FailpointName>([...everyKindOnce(failpointNames), 'listener-kill'])
      : order.shuffle(everyKindOnce(failpointNames))

  const stops: Array<Extract<Fault, { kind: 'worker-stop' }>> = []
  const isStopped = (worker: number, atMs: number) =>
    stops.some((stop) => stop.worker === worker && atMs >= stop.atMs - 2_000 && atMs <= stop.atMs + stop.durationMs + 5_000)
  const planStop = (atMs: number) =>
    stops.push({ kind: 'worker-stop', atMs, worker: targets.int(0, workerCount - 1), durationMs: profile.workerStopMs })

  // Short: one stop, early. Long: one every few minutes, never two at once.
  if (profile.name === 'short') planStop(profile.warmupMs + timing.int(0, 15_000))
  else {
    for (let atMs = profile.warmupMs + timing.int(0, 60_000); atMs + profile.workerStopMs < profile.faultPhaseMs;) {
      planStop(atMs)
      atMs += profile.workerStopMs + timing.int(60_000, 240_000)
    }
  }

  const sequential: Fault[] = []
  let atMs = profile.warmupMs
  const place = (next: Kind | FailpointName): boolean => {
    const fault = build(next, atMs)
    const endMs = atMs + expectedSpanMs(fault)
    if (profile.name === 'long' && endMs > profile.faultPhaseMs) return false
    sequential.push(fault)
    atMs = endMs + timing.int(profile.gapMs[0], profile.gapMs[1])
    return true
  }
  const build = (next: Kind | FailpointName, at: number): Fault => {
    if ((failpointNames as readonly string[]).includes(next)) {
      return { kind: 'server-failpoint', atMs: at, server: failpointServer, failpoint: next as FailpointName }
    }
    switch (next as Kind) {
      case 'worker-kill': {
        const candidates = [...Array(workerCount).keys()].filter((worker) => !isStopped(worker, at))
        return { kind: 'worker-kill', atMs: at, worker: targets.pick(candidates) }
      }
      case 'server-kill':
        return { kind: 'server-kill', atMs: at, server: targets.int(0, serverCount - 1) }
      case 'server-failpoint':
        return { kind: 'server-failpoint', atMs: at, server: failpointServer, failpoint: targets.pick(failpointNames) }
      case 'pg-restart':
        return { kind: 'pg-restart', atMs: at }
      case 'pg-outage':
        return { kind: 'pg-outage', atMs: at, durationMs: profile.outageMs }
      case 'listener-kill':
        return { kind: 'listener-kill', atMs: at }
      case 'pool-exhaustion':
        return {
          kind: 'pool-exhaustion',
          atMs: at,
          server: targets.int(0, serverCount - 1),
          durationMs: profile.exhaustionMs,
          callers: profile.exhaustionCallers,
        }
    }
  }

  for (const next of first) if (!place(next)) break
  if (profile.name === 'long') {
    const total = longWeights.reduce((sum, [, weight]) => sum + weight, 0)
    for (;;) {
      let draw = order.next() * total
      const next = longWeights.find(([, weight]) => (draw -= weight) < 0)![0]
      if (!place(next)) break
    }
  }
  return [...sequential, ...stops].sort((a, b) => a.atMs - b.atMs)
}

/** One line per fault, for the log: `+12.3s pg-outage 45s`. */
export function describeFault(fault: Fault): string {
  const at = `+${(fault.atMs / 1000).toFixed(1)}s`
  switch (fault.kind) {
    case 'worker-kill':
      return `${at} worker-kill worker ${fault.worker}`
    case 'worker-stop':
      return `${at} worker-stop worker ${fault.worker} for ${fault.durationMs / 1000}s`
    case 'server-kill':
      return `${at} server-kill server ${fault.server}`
    case 'server-failpoint':
      return `${at} server-failpoint server ${fault.server} at ${fault.failpoint}`
    case 'pg-restart':
      return `${at} pg-restart`
    case 'pg-outage':
      return `${at} pg-outage ${fault.durationMs / 1000}s`
    case 'listener-kill':
      return `${at} listener-kill`
    case 'pool-exhaustion':
      return `${at} pool-exhaustion server ${fault.server}, ${fault.callers} callers for ${fault.durationMs / 1000}s`
  }
}
