import type { Command } from '../command.js'
import { parseJsonText } from '../arguments.js'
import { MissingError } from '../failures.js'
import { formatInstant, formatJsonBrief } from '../format.js'
import { pagingOptions, readPages } from '../paging.js'
import { renderColumns, renderTable } from '../table.js'

/* `stackshift state get|set|list`: the namespace's State Store. */

const maxPageSize = 1000

const get: Command = {
  words: ['state', 'get'],
  operands: ['<key>'],
  summary: 'show an entry: its value, version and expiry (exit status 3 when there is none)',
  options: {},
  async run({ args, client }) {
    const [key] = args.expectOperands(['<key>'])
    const entry = await client().state.getEntry(key!)
    if (entry === undefined) throw new MissingError(`no State Store entry "${key!}"`)
    const text = renderColumns([
      ['key', entry.key],
      ['value', JSON.stringify(entry.value)],
      ['version', String(entry.version)],
      ['updated', formatInstant(entry.updatedAt)],
      ['expires', entry.expiresAt ? formatInstant(entry.expiresAt) : 'never'],
    ])
    return { json: entry, text }
  },
}

const set: Command = {
  words: ['state', 'set'],
  operands: ['<key>', '<json>'],
  summary: 'create or replace an entry (values starting with "-" go after "--")',
  options: { ttl: 'remove it after this long, e.g. 30s, 1h, 7d (default: never)' },
  async run({ args, client }) {
    const [key, json] = args.expectOperands(['<key>', '<json>'])
    const value = parseJsonText(json!, 'the value', args)
    const ttlMs = args.durationMs('ttl')
    const { version } = await client().state.set(key!, value, ttlMs === undefined ? {} : { ttl: ttlMs })
    return { json: { key: key!, version }, text: `set ${key!} (version ${version})` }
  },
}

const list: Command = {
  words: ['state', 'list'],
  operands: [],
  summary: 'list live entries in key order',
  options: { prefix: 'only keys that start with this', ...pagingOptions('entries', 100, maxPageSize) },
  async run({ args, client, note }) {
    args.expectOperands([])
    const prefix = args.string('prefix')
    const page = await readPages(
      args,
      maxPageSize,
      async (limit, cursor) => {
        const { entries, nextCursor } = await client().state.list({ prefix, limit, cursor })
        return { items: entries, nextCursor }
      },
      note,
    )
    const rows = page.items.map((entry) => [
      entry.key,
      String(entry.version),
      formatInstant(entry.updatedAt),
      entry.expiresAt ? formatInstant(entry.expiresAt) : 'never',
      formatJsonBrief(entry.value),
    ])
    return {
      json: { entries: page.items, nextCursor: page.nextCursor },
      text: renderTable(['KEY', 'VERSION', 'UPDATED', 'EXPIRES', 'VALUE'], rows),
    }
  },
}

export const stateCommands: readonly Command[] = [get, set, list]
