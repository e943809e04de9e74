import type { Command } from './command.js'
import { defaultAddress } from './connection.js'
import { exitCodes } from './failures.js'
import { type OptionDescriptions, type OptionName, type OptionSpec, globalOptions, optionSpecs } from './options.js'
import { renderColumns } from './table.js'

/*
 * Usage text, written from the commands' own descriptions so that it cannot
 * drift from what they take.
 */

function synopsis(command: Command): string {
  return [...command.words, ...command.operands].join(' ')
}

function optionLines(options: OptionDescriptions): string[][] {
  return (Object.entries(options) as Array<[OptionName, string]>).map(([name, description]) => {
    const spec: OptionSpec = optionSpecs[name]
    const short = spec.short === undefined ? '' : `-${spec.short}, `
    return [`  ${short}--${name}${spec.value === undefined ? '' : ` ${spec.value}`}`, description]
  })
}

const exitStatusText = `Exit status:
  ${exitCodes.ok}  done
  ${exitCodes.failed}  the server refused the call or failed, or could not be reached; stderr says
     "stackshift: <gRPC status name>: <message>", e.g. PERMISSION_DENIED
  ${exitCodes.usage}  usage error (unknown command or option, bad value): nothing was sent
  ${exitCodes.notFound}  not found: the run, bulk action or State Store entry named does not exist`

/** The overview: every command, the global options, exit statuses, environment. */
export function renderOverview(commands: readonly Command[]): string {
  return `Usage: stackshift <command> [options]

Commands:
${renderColumns(commands.map((command) => [`  ${synopsis(command)}`, command.summary]))}

Options of every command:
${renderColumns(optionLines(globalOptions))}

${exitStatusText}

Environment: STACKSHIFT_ADDRESS (default ${defaultAddress}), STACKSHIFT_API_KEY, STACKSHIFT_NAMESPACE;
flags override them. "stackshift <group> --help" shows a group's options (groups: ${groupsOf(commands).join(', ')}).`
}

/** A group's commands, each with its options. */
export function renderGroupUsage(commands: readonly Command[], group: string): string {
  const sections = commands
    .filter((command) => command.words[0] === group)
    .map((command) => {
      const options = optionLines(command.options)
      const table = options.length === 0 ? '' : `\n${renderColumns(options)}`
      return `stackshift ${synopsis(command)}${options.length === 0 ? '' : ' [options]'}\n  ${command.summary}${table}`
    })
  const globals = Object.keys(globalOptions)
    .map((name) => `--${name}`)
    .join(', ')
  return `${sections.join('\n\n')}\n\nEvery command also takes ${globals} (see stackshift --help).\n\n${exitStatusText}`
}

/** The first words of the commands: runs, events, state, ... */
export function groupsOf(commands: readonly Command[]): string[] {
  return [...new Set(commands.map((command) => command.words[0]!))]
}
