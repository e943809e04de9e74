import { prettyJson } from '../format.js'

/** JSON text, indented, in a scrolling block; `empty` when there is none. */
export function JsonBlock(props: { json: string | undefined; empty?: string; label?: string }) {
  const text = prettyJson(props.json)
  if (!text) return <div className="muted">{props.empty ?? 'none'}</div>
  return (
    <pre className="code" aria-label={props.label}>
      {text}
    </pre>
  )
}
