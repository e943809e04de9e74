import type { Command } from '../command.js'
import { keyCommands } from './keys.js'

/** Every command, in the order `stackshift --help` lists them. */
export const commands: readonly Command[] = [...keyCommands]
