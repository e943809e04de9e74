import type { StackShift } from '@stackshift/sdk'
import type { Arguments } from './arguments.js'
import type { OptionDescriptions } from './options.js'

/** What a command found or did, in both of the forms it can be printed in. */
export interface Outcome {
  /** The document `--json` prints (dates as ISO 8601 strings, absent values as null). */
  json: unknown
  /** What a person reads instead; empty prints nothing. */
  text: string
}

/** What a command runs with. */
export interface CommandContext {
  readonly args: Arguments
  /** The client, connected on first use, so that usage errors are found before any connection. */
  readonly client: () => StackShift
  /** Tells a person something besides the outcome (progress, the next page): stderr, and never with --json. */
  readonly note: (message: string) => void
  /** The environment the command runs in (STACKSHIFT_NAMESPACE and the like). */
  readonly env: NodeJS.ProcessEnv
}

/** One command: `stackshift <words...> <operands...> [options]`. */
export interface Command {
  /** The words that call it, e.g. `['runs', 'list']`. */
  readonly words: readonly string[]
  /** Its operands as usage shows them, e.g. `['<id>']`. */
  readonly operands: readonly string[]
  /** One line: what it does. */
  readonly summary: string
  /** The options it takes besides the global ones, and what each means to it. */
  readonly options: OptionDescriptions
  run(context: CommandContext): Promise<Outcome>
}
