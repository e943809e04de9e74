import type { Command } from '../command.js'
import { bulkCommands } from './bulk.js'
import { eventCommands } from './events.js'
import { keyCommands } from './keys.js'
import { queueCommands } from './queues.js'
import { runCommands } from './runs.js'
import { scheduleCommands } from './schedules.js'
import { stateCommands } from './state.js'
import { workerCommands } from './workers.js'

/** Every command, in the order `stackshift --help` lists them. */
export const commands: readonly Command[] = [
  ...runCommands,
  ...bulkCommands,
  ...eventCommands,
  ...scheduleCommands,
  ...stateCommands,
  ...queueCommands,
  ...workerCommands,
  ...keyCommands,
]
