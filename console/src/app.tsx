import { useQuery, useQueryClient } from '@tanstack/react-query'
import { useState } from 'react'
import { ConnectError, callUnary } from './api/connect-client.js'
import { getCaller } from './api/methods.js'
import { Layout } from './components/layout.js'
import { BulkActionsPage } from './pages/bulk-actions-page.js'
import { EventsPage } from './pages/events-page.js'
import { LoginPage } from './pages/login-page.js'
import { QueuesPage } from './pages/queues-page.js'
import { RunPage } from './pages/run-page.js'
import { RunsPage } from './pages/runs-page.js'
import { SchedulesPage } from './pages/schedules-page.js'
import { StatePage } from './pages/state-page.js'
import { WorkersPage } from './pages/workers-page.js'
import { navigate, useLocation } from './router.js'
import { SessionContext, createSession, loadApiKey, loadNamespace, saveApiKey, saveNamespace } from './session.js'

export const callerQueryKey = ['caller']

/**
 * Asks the server who the caller is (GetCaller) with the stored key, or none:
 * a server with auth off answers for anyone; one that requires a key answers
 * `unauthenticated`, and the login page asks for one.
 */
export function App() {
  const queryClient = useQueryClient()
  const [apiKey, setApiKey] = useState(loadApiKey)
  const [namespace, setNamespace] = useState(loadNamespace)
  const caller = useQuery({
    queryKey: [...callerQueryKey, apiKey],
    queryFn: ({ signal }) => callUnary(getCaller, {}, { apiKey, signal }),
    staleTime: 60_000,
    refetchOnWindowFocus: false,
  })

  const signIn = (key: string, remember: boolean) => {
    saveApiKey(key, remember)
    setApiKey(key)
  }
  const signOut = () => {
    saveApiKey(undefined, false)
    setApiKey(undefined)
    queryClient.clear()
  }

  if (caller.isPending) return <div className="splash">Loading…</div>
  if (caller.isError) {
    if (caller.error instanceof ConnectError && caller.error.code === 'unauthenticated') {
      return <LoginPage refusal={apiKey === undefined ? undefined : caller.error.message} onSignIn={signIn} />
    }
    return (
      <div className="splash">
        <div className="notice notice-error">
          <strong>The console cannot reach the server.</strong> {caller.error.message}
          <div>
            <button className="button" onClick={() => void caller.refetch()}>
              Try again
            </button>
          </div>
        </div>
      </div>
    )
  }
  const session = createSession({
    caller: caller.data,
    apiKey,
    chosenNamespace: namespace,
    setNamespace: (chosen) => {
      saveNamespace(chosen)
      setNamespace(chosen)
    },
    signOut,
  })
  return (
    <SessionContext.Provider value={session}>
      <Layout>
        <Routes />
      </Layout>
    </SessionContext.Provider>
  )
}

/** The page for the current path. */
function Routes() {
  const { path } = useLocation()
  const runMatch = /^\/runs\/([^/]+)$/.exec(path)
  if (runMatch) return <RunPage key={runMatch[1]} runId={decodeURIComponent(runMatch[1]!)} />
  switch (path) {
    case '/':
    case '/runs':
      return <RunsPage />
    case '/events':
      return <EventsPage />
    case '/schedules':
      return <SchedulesPage />
    case '/queues':
      return <QueuesPage />
    case '/workers':
      return <WorkersPage />
    case '/state':
      return <StatePage />
    case '/bulk-actions':
      return <BulkActionsPage />
    default:
      return <NotFound />
  }
}

function NotFound() {
  return (
    <div className="empty">
      <p>There is no page here.</p>
      <button className="button" onClick={() => navigate('/runs')}>
        Go to runs
      </button>
    </div>
  )
}
