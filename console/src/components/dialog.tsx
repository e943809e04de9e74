import { type ReactNode, useEffect, useRef } from 'react'

/** A modal dialog (the browser's <dialog>: focus stays inside, Escape closes it). */
export function Dialog(props: { title: string; onClose: () => void; children: ReactNode; wide?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null)
  useEffect(() => {
    const dialog = ref.current!
    dialog.showModal()
    return () => dialog.close()
  }, [])
  return (
    <dialog ref={ref} className={props.wide ? 'dialog dialog-wide' : 'dialog'} onClose={props.onClose} aria-label={props.title}>
      <header className="dialog-header">
        <h2>{props.title}</h2>
        <button className="icon-button" onClick={props.onClose} aria-label="Close">
          ×
        </button>
      </header>
      <div className="dialog-body">{props.children}</div>
    </dialog>
  )
}
