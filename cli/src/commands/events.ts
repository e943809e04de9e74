import type { Command } from '../command.js'
import { formatInstant, formatJsonBrief } from '../format.js'
import { pagingOptions, readPages } from '../paging.js'
import { renderTable } from '../table.js'

/* `stackshift events send|list`: events resume the runs waiting for them. */

const maxPageSize = 500

const send: Command = {
  words: ['events', 'send'],
  operands: ['<name>'],
  summary: 'send an event: it resumes the runs waiting for it',
  options: {
    data: 'the event\'s data as JSON (default null), e.g. \'{"orderId":"o_1"}\'',
    id: "the event's id: sending an id again sends nothing new (default: the server picks one)",
  },
  async run({ args, client }) {
    const [name] = args.expectOperands(['<name>'])
    const data = args.json('data')
    const sent = await client().sendEvent(name!, data, { id: args.string('id') })
    const outcome = sent.deduplicated ? 'already sent; nothing sent again' : `resumed ${sent.resumedRuns} run(s)`
    return {
      json: { id: sent.id, name: name!, deduplicated: sent.deduplicated, resumedRuns: sent.resumedRuns },
      text: `sent event ${sent.id}: ${outcome}`,
    }
  },
}

const list: Command = {
  words: ['events', 'list'],
  operands: [],
  summary: 'list events, newest first, and how many waiting runs each resumed',
  options: { name: 'only events of this name', ...pagingOptions('events', 50, maxPageSize) },
  async run({ args, client, note }) {
    args.expectOperands([])
    const name = args.string('name')
    const page = await readPages(
      args,
      maxPageSize,
      async (limit, cursor) => {
        const { events, nextCursor } = await client().listEvents({ name, limit, cursor })
        return { items: events, nextCursor }
      },
      note,
    )
    const rows = page.items.map((event) => [
      event.id,
      event.name,
      formatInstant(event.receivedAt),
      String(event.deliveries.length),
      formatJsonBrief(event.data),
    ])
    return {
      json: { events: page.items, nextCursor: page.nextCursor },
      text: renderTable(['ID', 'NAME', 'RECEIVED', 'RESUMED', 'DATA'], rows),
    }
  },
}

export const eventCommands: readonly Command[] = [send, list]
