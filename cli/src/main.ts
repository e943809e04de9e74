import type { StackShift } from '@stackshift/sdk'
import { Arguments, type CommandLine, parseCommandLine } from './arguments.js'
import type { Command } from './command.js'
import { commands } from './commands/index.js'
import { connect } from './connection.js'
import { UsageError, describeFailure, exitCodes } from './failures.js'
import { toJsonDocument } from './format.js'
import { groupsOf, renderGroupUsage, renderOverview } from './help.js'
import { type OptionName, globalOptions } from './options.js'

/*
 * The `stackshift` command: a client of the protocol like any other, built on
 * the SDK. Parse, find the command, run it, print its outcome as a table or
 * JSON, and exit with a status a script can test (see failures.ts).
 */

/** The command the words name (the longest match), and the words after its own. */
function findCommand(words: readonly string[]): { command: Command; operands: string[] } {
  const startsWith = (command: Command, prefix: readonly string[]) => prefix.every((word, index) => command.words[index] === word)
  const matches = commands.filter((command) => command.words.every((word, index) => words[index] === word))
  const command = matches.sort((a, b) => b.words.length - a.words.length)[0]
  if (command) return { command, operands: words.slice(command.words.length) }
  const group = groupsOf(commands).find((name) => name === words[0])
  // `runs bulk` alone: say which words may follow.
  const next = [...new Set(commands.filter((candidate) => startsWith(candidate, words)).map((candidate) => candidate.words[words.length]!))]
  throw new UsageError(
    next.length > 0 ? `"${words.join(' ')}" needs one of: ${next.join(', ')}` : `unknown command "${words.join(' ')}"`,
    group,
  )
}

/** The command line; a malformed one is a UsageError that points at the usage of the group it names. */
function parse(argv: string[]): CommandLine {
  try {
    return parseCommandLine(argv)
  } catch (error) {
    const group = groupsOf(commands).find((name) => argv.includes(name))
    throw error instanceof UsageError && group !== undefined ? new UsageError(error.message, group) : error
  }
}

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const line = parse(argv)
  const isHelp = line.values.help === true
  // `stackshift help [group]` reads as `stackshift [group] --help`.
  const words = line.words[0] === 'help' ? line.words.slice(1) : line.words
  if (words.length === 0) {
    if (isHelp || line.words[0] === 'help') {
      console.log(renderOverview(commands))
      return exitCodes.ok
    }
    throw new UsageError('a command is needed')
  }
  if (isHelp || line.words[0] === 'help') {
    const group = groupsOf(commands).find((name) => name === words[0])
    if (group === undefined) throw new UsageError(`unknown command "${words.join(' ')}"`)
    console.log(renderGroupUsage(commands, group))
    return exitCodes.ok
  }

  const { command, operands } = findCommand(words)
  const accepted = new Set([...Object.keys(globalOptions), ...Object.keys(command.options)] as OptionName[])
  const args = new Arguments(command.words.join(' '), operands, line.values, accepted, command.words[0]!)
  const isJson = args.flag('json')
  let client: StackShift | undefined
  try {
    const outcome = await command.run({
      args,
      env,
      client: () => (client ??= connect(args, env)),
      note: (message) => {
        if (!isJson) console.error(message)
      },
    })
    if (isJson) console.log(toJsonDocument(outcome.json))
    else if (outcome.text !== '') console.log(outcome.text)
    return exitCodes.ok
  } finally {
    client?.close()
  }
}

main(process.argv.slice(2), process.env).then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    const { message, exitCode } = describeFailure(error)
    // A pointer to the usage, not the usage itself: the mistake stays the one thing on screen.
    const hint = error instanceof UsageError ? `\nsee "stackshift ${error.group ? `${error.group} ` : ''}--help"` : ''
    console.error(`stackshift: ${message}${hint}`)
    process.exitCode = exitCode
  },
)
