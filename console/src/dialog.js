// A modal built on the native <dialog>: showModal() gives focus trapping, Escape to close and an
// inert page behind it, which is what keyboard and screen-reader users expect.
import { html } from "htm/preact";
import { useEffect, useRef } from "preact/hooks";

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
