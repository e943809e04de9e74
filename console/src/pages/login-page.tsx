import { useState } from 'react'

/** Asks for an API key: the server requires one. */
export function LoginPage(props: { refusal: string | undefined; onSignIn: (apiKey: string, remember: boolean) => void }) {
  const [apiKey, setApiKey] = useState('')
  const [remember, setRemember] = useState(false)
  return (
    <div className="login">
      <form
        className="login-card"
        onSubmit={(event) => {
          event.preventDefault()
          if (apiKey.trim()) props.onSignIn(apiKey.trim(), remember)
        }}
      >
        <div className="brand brand-dark">
          <img src="/favicon.svg" alt="" width={32} height={32} />
          <span>StackShift</span>
        </div>
        <p className="muted">
          This server requires an API key. A key with the read scope shows everything; the operate scope allows actions.
        </p>
        <label htmlFor="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autoComplete="off"
          spellCheck={false}
          placeholder="ssk_…"
          value={apiKey}
          onChange={(event) => setApiKey(event.target.value)}
          autoFocus
        />
        <label className="checkbox">
          <input type="checkbox" checked={remember} onChange={(event) => setRemember(event.target.checked)} />
          Remember on this browser
        </label>
        {props.refusal !== undefined && <div className="notice notice-error">The server refused the key: {props.refusal}</div>}
        <button className="button button-primary" type="submit" disabled={!apiKey.trim()}>
          Sign in
        </button>
      </form>
    </div>
  )
}
