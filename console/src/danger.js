// Destructive controls, set apart, each behind a confirmation that makes you type the shell's name.
import { html } from "htm/preact";
import { useState } from "preact/hooks";
import { Dialog } from "./dialog.js";

export const DANGERS = {
  stop: ["Stop", "End the session. Processes stop; the filesystem stays."],
  wipe_state: ["Wipe state", "Destroy the shell's filesystem state entirely. Nothing lingers."],
  delete: ["Delete", "Delete the shell and everything in it. This cannot be undone."],
};

export function DangerZone({ shell, onConfirm }) {
  const [asking, setAsking] = useState(null);
  return html`<section class="danger" aria-labelledby="danger-title">
    <h3 id="danger-title">Danger zone</h3>
    ${Object.entries(DANGERS).map(
      ([what, [label, text]]) => html`<div class="danger-row">
        <div><strong>${label}</strong><p>${text}</p></div>
        <button type="button" class="destructive" id=${`danger-${what}`} onClick=${() => setAsking(what)}>
          ${label}…
        </button>
      </div>`,
    )}
    ${asking &&
    html`<${Confirm}
      shell=${shell}
      what=${asking}
      onClose=${() => setAsking(null)}
      onConfirm=${() => {
        setAsking(null);
        onConfirm(asking);
      }}
    />`}
  </section>`;
}

function Confirm({ shell, what, onClose, onConfirm }) {
  const [typed, setTyped] = useState("");
  const [label, text] = DANGERS[what];
  const ok = typed === shell.name;
  return html`<${Dialog} id="confirm" title=${`${label} ${shell.name}?`} onClose=${onClose} className="narrow">
    <form onSubmit=${(e) => { e.preventDefault(); if (ok) onConfirm(); }}>
      <p>${text} It is recorded in the audit trail.</p>
      <label for="confirm-name">Type <strong class="mono">${shell.name}</strong> to confirm</label>
      <input id="confirm-name" autocomplete="off" spellcheck="false" value=${typed}
        onInput=${(e) => setTyped(e.target.value)} />
      <div class="actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="destructive" id="confirm-go" disabled=${!ok}>${label}</button>
      </div>
    </form>
  </${Dialog}>`;
}
