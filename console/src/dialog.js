// A modal built on the native <dialog>: showModal() gives focus trapping, Escape to close and an
// inert page behind it, which is what keyboard and screen-reader users expect.
import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { errorText } from "./format.js";

export function Dialog({ title, onClose, children, className = "", id }) {
  const ref = useRef(null);
  useEffect(() => {
    const el = ref.current;
    if (!el.open) el.showModal();
    return () => el.open && el.close();
  }, []);
  const titleId = `${id}-title`;
  return html`<dialog
    ref=${ref}
    id=${id}
    class="dialog ${className}"
    aria-labelledby=${titleId}
    onCancel=${(e) => {
      e.preventDefault();
      onClose();
    }}
  >
    <header class="dialog-head">
      <h2 id=${titleId}>${title}</h2>
      <button type="button" class="icon" aria-label="Close" onClick=${onClose}>✕</button>
    </header>
    ${children}
  </dialog>`;
}

/** "Delete <what>?" with a sentence on what follows; the server's refusal stays in the dialog. */
export function ConfirmDelete({ id, what, text, onClose, onConfirm }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function go(e) {
    e.preventDefault();
    setBusy(true);
    try {
      await onConfirm();
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  }
  return html`<${Dialog} id=${id} title=${`Delete ${what}?`} onClose=${onClose} className="narrow">
    <form onSubmit=${go}>
      <p>${text} It is recorded in the audit trail.</p>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <div class="actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="destructive" id=${`${id}-go`} disabled=${busy}>Delete</button>
      </div>
    </form>
  </${Dialog}>`;
}
