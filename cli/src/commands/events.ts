import type { Command } from '../command.js'

/* `stackshift events send`: events resume the runs waiting for them. */

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

export const eventCommands: readonly Command[] = [send]
