/*
 * Failpoints: named places in the server where a fault-injection run can make
 * the process die on purpose, at the worst moment for whoever is waiting on
 * it — after a transaction committed and before anyone was answered. `npm
 * run chaos` (chaos/) uses them to check that clients which retry an
 * unanswered write get the outcome that was committed, and nothing twice.
 *
 * They are compiled in always and armed only by the environment variable
 * STACKSHIFT_FAILPOINTS, read once when this module loads: a comma-separated
 * list of names, e.g. `STACKSHIFT_FAILPOINTS=complete-run:after-commit`. The
 * first time the server reaches an armed failpoint it kills itself with
 * SIGKILL. Unarmed (the variable unset or empty), a failpoint costs one
 * branch. It is a tool for tests, not a setting: it is not in config.ts.
 */

/** Every failpoint, by where it is. */
export const failpointNames = [
  /** An enqueue batch (group-committed singles, or one EnqueueBatch call) committed; no enqueuer answered yet. */
  'enqueue:after-commit',
  /** A batch of step results committed; no worker answered yet. */
  'complete-step:after-commit',
  /** A batch of run completions committed; no worker answered yet. */
  'complete-run:after-commit',
  /** A sleep or event wait committed (the run suspended, or its step completed at once); the worker not answered yet. */
  'suspend-run:after-commit',
] as const

export type FailpointName = (typeof failpointNames)[number]

/** The failpoints named in STACKSHIFT_FAILPOINTS; undefined when none is. */
const armed: ReadonlySet<string> | undefined = parseFailpoints(process.env.STACKSHIFT_FAILPOINTS)

function parseFailpoints(value: string | undefined): ReadonlySet<string> | undefined {
  const names = (value ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '')
  if (names.length === 0) return undefined
  const unknown = names.filter((name) => !(failpointNames as readonly string[]).includes(name))
  if (unknown.length > 0) {
    throw new Error(`STACKSHIFT_FAILPOINTS names unknown failpoints: ${unknown.join(', ')} (known: ${failpointNames.join(', ')})`)
  }
  return new Set(names)
}

/** The failpoints armed in this process (for the start-up log); empty in production. */
export function armedFailpoints(): string[] {
  return [...(armed ?? [])]
}

/** Kills this process at once (SIGKILL) if `name` is armed; otherwise does nothing. */
export function failpoint(name: FailpointName): void {
  if (armed === undefined) return
  if (!armed.has(name)) return
  // SIGKILL: no handler runs, no reply or pending write leaves, as in a crash.
  process.kill(process.pid, 'SIGKILL')
  // Not reached once the signal is delivered; never carry on past an armed failpoint.
  process.exit(137)
}
