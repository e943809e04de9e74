import { ConnectError } from '../api/connect-client.js'

/** An error a call ended with, as the server worded it. */
export function ErrorNotice(props: { error: unknown; action?: string }) {
  const { error } = props
  const code = error instanceof ConnectError ? error.code : undefined
  const message = error instanceof Error ? error.message : String(error)
  const title =
    code === 'permission_denied'
      ? 'Not allowed'
      : code === 'not_found'
        ? 'Not found'
        : code === 'invalid_argument'
          ? 'Invalid input'
          : 'Failed'
  return (
    <div className="notice notice-error" role="alert">
      <strong>{props.action ? `${props.action}: ${title.toLowerCase()}` : title}.</strong> {message}
    </div>
  )
}
