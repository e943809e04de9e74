import { useQuery } from '@tanstack/react-query'

/** The server's settings the page needs (`GET /config.json`): not data, so not a call. */
export interface PageConfig {
  /** A URL with `{traceId}` (STACKSHIFT_CONSOLE_TRACE_URL), or null. */
  traceUrl: string | null
}

export function usePageConfig(): PageConfig {
  const config = useQuery({
    queryKey: ['page-config'],
    queryFn: async (): Promise<PageConfig> => {
      const response = await fetch('/config.json')
      return response.ok ? ((await response.json()) as PageConfig) : { traceUrl: null }
    },
    staleTime: Infinity,
  })
  return config.data ?? { traceUrl: null }
}

/** The link to a trace, when the server has a URL for traces. */
export function traceLink(config: PageConfig, traceId: string): string | undefined {
  return config.traceUrl ? config.traceUrl.replaceAll('{traceId}', encodeURIComponent(traceId)) : undefined
}
