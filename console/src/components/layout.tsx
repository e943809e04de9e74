import { ApiKeyScope, apiKeyScopeToJSON } from '@stackshift/proto/admin-service'
import { type ReactNode, useState } from 'react'
import { Link, useLocation } from '../router.js'
import { useSession } from '../session.js'

const sections = [
  { href: '/runs', label: 'Runs' },
  { href: '/events', label: 'Events' },
  { href: '/schedules', label: 'Schedules' },
  { href: '/queues', label: 'Queues' },
  { href: '/workers', label: 'Workers' },
  { href: '/state', label: 'State' },
  { href: '/bulk-actions', label: 'Bulk actions' },
]

/** The frame of every page: navigation, the namespace, and who is signed in. */
export function Layout(props: { children: ReactNode }) {
  const { path } = useLocation()
  const session = useSession()
  const { caller } = session
  const scopes = caller.scopes
    .filter((scope) => scope !== ApiKeyScope.API_KEY_SCOPE_UNSPECIFIED)
    .map((scope) => apiKeyScopeToJSON(scope).replace('API_KEY_SCOPE_', '').toLowerCase())
  return (
    <div className="shell">
      <nav className="sidebar" aria-label="Sections">
        <Link href="/runs" className="brand">
          <img src="/favicon.svg" alt="" width={26} height={26} />
          <span>StackShift</span>
        </Link>
        <ul>
          {sections.map((section) => (
            <li key={section.href}>
              <Link
                href={section.href}
                className={path.startsWith(section.href) || (path === '/' && section.href === '/runs') ? 'active' : undefined}
              >
                {section.label}
              </Link>
            </li>
          ))}
        </ul>
        <div className="caller">
          <div className="caller-key" title="The API key this console calls with">
            {caller.isAuthRequired ? caller.keyId : 'auth off'}
          </div>
          <div className="caller-scopes">{scopes.join(' · ')}</div>
          {!session.canOperate && <div className="caller-readonly">read-only</div>}
          {caller.isAuthRequired && (
            <button className="link-button" onClick={session.signOut}>
              Sign out
            </button>
          )}
        </div>
      </nav>
      <div className="main">
        <header className="topbar">
          <NamespacePicker />
        </header>
        <main className="content">{props.children}</main>
      </div>
    </div>
  )
}

/** The namespace shown: fixed for a key of one namespace, chosen for a key of every namespace. */
function NamespacePicker() {
  const session = useSession()
  const [draft, setDraft] = useState(session.namespace)
  if (session.caller.namespace !== '*') {
    return (
      <div className="namespace">
        namespace <strong>{session.namespace}</strong>
      </div>
    )
  }
  return (
    <form
      className="namespace"
      onSubmit={(event) => {
        event.preventDefault()
        session.setNamespace(draft.trim() || 'default')
      }}
    >
      <label htmlFor="namespace">namespace</label>
      <input
        id="namespace"
        value={draft}
        onChange={(event) => setDraft(event.target.value)}
        onBlur={() => session.setNamespace(draft.trim() || 'default')}
        spellCheck={false}
      />
    </form>
  )
}
