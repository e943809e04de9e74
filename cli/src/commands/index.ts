import type { Command } from '../command.js'
import { eventCommands } from './events.js'
import { keyCommands } from './keys.js'
import { runCommands } from './runs.js'
import { stateCommands } from './state.js'

/** Every command, in the order `stackshift --help` lists them. */
export const commands: readonly Command[] = [...runCommands, ...eventCommands, ...stateCommands, ...keyCommands]
