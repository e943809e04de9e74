import { parseArgs } from 'node:util'
import { parseDurationMs } from './durations.js'
import { UsageError } from './failures.js'
import { type BooleanOption, type OptionName, type StringOption, optionSpecs } from './options.js'

/*
 * The command line, parsed once against every option any command takes, then
 * read by the command it names through typed accessors that turn a bad value
 * into a UsageError naming the option.
 */

/** The command line split into words (command and operands) and option values. */
export interface CommandLine {
  words: string[]
  values: Partial<Record<OptionName, string | boolean>>
}

const parseConfig = Object.fromEntries(
  Object.entries(optionSpecs).map(([name, spec]: [string, { type: 'string' | 'boolean'; short?: string }]) => [
    name,
    spec.short === undefined ? { type: spec.type } : { type: spec.type, short: spec.short },
  ]),
)

/** Splits `argv`; an unknown option or a missing value is a UsageError. Values after `--` are words. */
export function parseCommandLine(argv: string[]): CommandLine {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: parseConfig, allowPositionals: true, strict: true })
    return { words: positionals, values }
  } catch (error) {
    // node:util reports a malformed command line as a TypeError with an ERR_PARSE_ARGS_* code.
    if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS_'))
      throw new UsageError(error.message)
    throw error
  }
}

/** What a command reads from the command line. */
export class Arguments {
  /**
   * @param command the command's words, for messages ("runs list")
   * @param operands the words after the command's own
   * @param accepted options the command takes; any other given is a UsageError
   */
  constructor(
    readonly command: string,
    private readonly operands: readonly string[],
    private readonly values: CommandLine['values'],
    accepted: ReadonlySet<OptionName>,
    private readonly group: string,
  ) {
    for (const name of Object.keys(values) as OptionName[])
      if (!accepted.has(name)) throw this.usageError(`${command} does not take --${name}`)
  }

  /** A UsageError that shows this command's usage. */
  usageError(message: string): UsageError {
    return new UsageError(message, this.group)
  }

  /** The operands, checked against how many the command takes. */
  expectOperands(names: readonly string[]): string[] {
    if (this.operands.length < names.length) throw this.usageError(`${this.command} needs ${names.slice(this.operands.length).join(' ')}`)
    if (this.operands.length > names.length) throw this.usageError(`${this.command}: unexpected "${this.operands[names.length]!}"`)
    return [...this.operands]
  }

  /** The option's value as given, or undefined. */
  string(name: StringOption): string | undefined {
    const value = this.values[name]
    return typeof value === 'string' ? value : undefined
  }

  /** Whether the switch was given. */
  flag(name: BooleanOption): boolean {
    return this.values[name] === true
  }

  /** A value the command cannot do without. */
  required(name: StringOption, why: string): string {
    const value = this.string(name)
    if (value === undefined || value === '') throw this.usageError(`${this.command} needs --${name}, ${why}`)
    return value
  }

  /** One of `allowed`. */
  choice<T extends string>(name: StringOption, allowed: readonly T[]): T | undefined {
    const value = this.string(name)
    if (value === undefined) return undefined
    const known = allowed.find((candidate) => candidate === value)
    if (known === undefined) throw this.usageError(`--${name} "${value}" is not one of ${allowed.join(', ')}`)
    return known
  }

  /** A whole number within [min, max]. */
  integer(name: StringOption, min: number, max: number): number | undefined {
    const value = this.string(name)
    if (value === undefined) return undefined
    const number = Number(value)
    if (!/^\d+$/.test(value) || number < min || number > max)
      throw this.usageError(`--${name} must be a whole number from ${min} to ${max}`)
    return number
  }

  /** An instant: ISO 8601, or a duration meaning that long before `now` ("30m": half an hour ago). */
  instant(name: StringOption, now: Date = new Date()): Date | undefined {
    const value = this.string(name)
    if (value === undefined) return undefined
    const agoMs = parseDurationMs(value)
    if (agoMs !== undefined) return new Date(now.getTime() - agoMs)
    // Only text that starts like a date: Date() alone would also take "1" or "May".
    const date = /^\d{4}-\d{2}-\d{2}/.test(value) ? new Date(value) : new Date(Number.NaN)
    if (Number.isNaN(date.getTime()))
      throw this.usageError(
        `--${name} "${value}" is neither a time (ISO 8601, e.g. 2027-01-31T09:00:00Z) nor a duration ago (e.g. 30m, 2d)`,
      )
    return date
  }

  /** A duration in milliseconds ("500ms", "30s", "1h30m", "7d"). */
  durationMs(name: StringOption): number | undefined {
    const value = this.string(name)
    if (value === undefined) return undefined
    const ms = parseDurationMs(value)
    if (ms === undefined) throw this.usageError(`--${name} "${value}" is not a duration (e.g. 500ms, 30s, 10m, 1h30m, 7d)`)
    return ms
  }

  /** A JSON value. */
  json(name: StringOption): unknown {
    const value = this.string(name)
    return value === undefined ? undefined : parseJsonText(value, `--${name}`, this)
  }

  /** A JSON object (a payload filter). */
  jsonObject(name: StringOption): Record<string, unknown> | undefined {
    const value = this.json(name)
    if (value === undefined) return undefined
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw this.usageError(`--${name} must be a JSON object, e.g. '{"customer":"c_1"}'`)
    return value as Record<string, unknown>
  }
}

/** `text` as JSON; what it is for (`--data`, `the value`) names it in the UsageError. */
export function parseJsonText(text: string, what: string, args: Arguments): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch (error) {
    throw args.usageError(`${what} is not JSON (${(error as Error).message}); quote strings: '"text"'`)
  }
}
