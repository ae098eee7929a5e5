// The activity terminal: always dark, in both themes. Every event of the shell, live, and the output
// of the actions run from this sheet.
import { html } from "htm/preact";
import { useEffect, useRef } from "preact/hooks";

export function Activity({ lines }) {
  const ref = useRef(null);
  useEffect(() => {
    const el = ref.current;
    el.scrollTop = el.scrollHeight;
  }, [lines.length]);
  return html`<section class="activity-panel" aria-labelledby="activity-title">
    <h3 id="activity-title">Activity</h3>
    <div class="activity" id="activity" role="log" aria-live="polite" tabindex="0" ref=${ref}>
      ${lines.map((l) => html`<div key=${l.key} class="line ${l.kind}">${l.text}</div>`)}
    </div>
  </section>`;
}
