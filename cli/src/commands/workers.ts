import type { Command } from '../command.js'
import { formatInstant } from '../format.js'
import { renderTable } from '../table.js'

/* `stackshift workers`: the workers connected to any server of the namespace. */

const workers: Command = {
  words: ['workers'],
  operands: [],
  summary: 'list the workers connected now (seen within 30 seconds), with their queues, jobs and free slots',
  options: {},
  async run({ args, client }) {
    args.expectOperands([])
    const connected = await client().listWorkers()
    const rows = connected.map((worker) => [
      worker.workerId,
      worker.queues.join(','),
      worker.jobs.length === 0 ? '-' : worker.jobs.join(','),
      String(worker.freeSlots),
      worker.sdk,
      formatInstant(worker.connectedAt),
      formatInstant(worker.lastSeenAt),
      worker.serverId,
    ])
    return {
      json: { workers: connected },
      text: renderTable(['WORKER', 'QUEUES', 'JOBS', 'FREE', 'SDK', 'CONNECTED', 'LAST SEEN', 'SERVER'], rows),
    }
  },
}

export const workerCommands: readonly Command[] = [workers]
