import { QueryCache, QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import 'uplot/dist/uPlot.min.css'
import './styles.css'
import { ConnectError } from './api/connect-client.js'
import { App, callerQueryKey } from './app.js'

const queryClient: QueryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // Errors the server answered are not worth repeating at once; a lost connection is.
      retry: (failures, error) => failures < 2 && error instanceof ConnectError && error.code === 'unavailable',
      refetchOnWindowFocus: true,
      staleTime: 1000,
    },
  },
  queryCache: new QueryCache({
    // A key revoked (or expired) while the console is open: ask who the caller is again, which signs out.
    onError: (error, query) => {
      const isCallerQuery = query.queryKey[0] === callerQueryKey[0]
      if (!isCallerQuery && error instanceof ConnectError && error.code === 'unauthenticated') {
        void queryClient.invalidateQueries({ queryKey: callerQueryKey })
      }
    },
  }),
})

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <App />
    </QueryClientProvider>
  </StrictMode>,
)
