import type { Arguments } from './arguments.js'
import type { OptionDescriptions } from './options.js'

/*
 * --limit, --cursor and --all for every command that lists: one page, the
 * page after a cursor, or every page to the end.
 */

/** One page of a listing. */
export interface Page<T> {
  items: T[]
  /** Where the next page starts; undefined after the last. */
  nextCursor: string | undefined
}

/** The paging options, described for a listing of `things` whose pages hold at most `maxLimit`. */
export function pagingOptions(things: string, defaultLimit: number, maxLimit: number): OptionDescriptions {
  return {
    limit: `${things} per page, 1 to ${maxLimit} (default ${defaultLimit}; with --all, ${maxLimit})`,
    cursor: 'start where the page that printed it ended',
    all: `read every page to the last`,
  }
}

/**
 * The page the options ask for, or with --all every page from there on. A
 * person is told (through `note`) how to read on when pages are left.
 */
export async function readPages<T>(
  args: Arguments,
  maxLimit: number,
  readPage: (limit: number | undefined, cursor: string | undefined) => Promise<Page<T>>,
  note: (message: string) => void,
): Promise<Page<T>> {
  const isAll = args.flag('all')
  const limit = args.integer('limit', 1, maxLimit) ?? (isAll ? maxLimit : undefined)
  let page = await readPage(limit, args.string('cursor'))
  if (isAll) {
    const items = [...page.items]
    while (page.nextCursor !== undefined) {
      page = await readPage(limit, page.nextCursor)
      items.push(...page.items)
    }
    return { items, nextCursor: undefined }
  }
  if (page.nextCursor !== undefined) note(`more: add --cursor ${page.nextCursor} (or --all)`)
  return page
}
