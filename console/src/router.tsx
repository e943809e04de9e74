import { type AnchorHTMLAttributes, type MouseEvent, useSyncExternalStore } from 'react'

/*
 * The console's few routes need no router library: the History API and one
 * subscription. A location is the path and the query; the query holds a
 * page's filters, so a filtered list can be bookmarked, shared and reloaded.
 */

const listeners = new Set<() => void>()
const notify = () => {
  for (const listener of listeners) listener()
}
window.addEventListener('popstate', notify)

function subscribe(listener: () => void): () => void {
  listeners.add(listener)
  return () => listeners.delete(listener)
}

const currentHref = () => window.location.pathname + window.location.search

/** The current path and query, re-rendering on every navigation. */
export function useLocation(): { path: string; query: URLSearchParams } {
  const href = useSyncExternalStore(subscribe, currentHref)
  const url = new URL(href, window.location.origin)
  return { path: url.pathname, query: url.searchParams }
}

/** Goes to `href` (a path with an optional query); `replace` keeps the history entry (filters typed in place). */
export function navigate(href: string, options: { replace?: boolean } = {}): void {
  if (href === currentHref()) return
  if (options.replace) window.history.replaceState(null, '', href)
  else window.history.pushState(null, '', href)
  window.scrollTo(0, 0)
  notify()
}

/** `path` with the non-empty entries of `query` as its query string. */
export function hrefOf(path: string, query: Record<string, string | undefined> = {}): string {
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query)) if (value) params.set(key, value)
  const search = params.toString()
  return search ? `${path}?${search}` : path
}

/** An anchor that navigates within the app; modified clicks (new tab) are left to the browser. */
export function Link(props: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const onClick = (event: MouseEvent<HTMLAnchorElement>) => {
    props.onClick?.(event)
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return
    event.preventDefault()
    navigate(props.href)
  }
  return <a {...props} onClick={onClick} />
}
