// The Secrets view: the tenant's secrets by name (hosts, header, version, last change); create one,
// rotate its value, delete it. A value is typed into a password field, sent once and never shown
// again: no answer of the server holds one, and the field is gone when its dialog closes.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { ConfirmDelete, Dialog } from "./dialog.js";
import { age, errorText } from "./format.js";

/** "api.github.com, *.example.org" or one per line → the list the server checks. */
export const splitList = (text) => text.split(/[\s,]+/).filter(Boolean);

function SecretDialog({ api, rotating, onClose, onSaved }) {
  const [name, setName] = useState("");
  const [value, setValue] = useState("");
  const [hosts, setHosts] = useState("");
  const [header, setHeader] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);

  async function submit(e) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const saved = rotating
        ? await api.rotateSecret(rotating.name, value)
        : await api.createSecret({ name, value, hosts: splitList(hosts), ...(header ? { header } : {}) });
      setValue("");
      onSaved(saved);
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  }

  const id = rotating ? "secret-rotate" : "secret-create";
  const title = rotating ? `Rotate ${rotating.name}` : "New secret";
  return html`<${Dialog} id=${id} title=${title} onClose=${onClose}>
    <form onSubmit=${submit} autocomplete="off">
      ${rotating
        ? html`<p>Running and paused shells send the new value from their next request; nothing restarts.</p>`
        : html`<div class="grid2">
            <label>Name <span class="hint">(the shell's environment variable)</span>
              <input id="secret-name" required value=${name} placeholder="GITHUB_TOKEN" spellcheck=${false}
                onInput=${(e) => setName(e.target.value)} />
            </label>
            <label>Header <span class="hint">(optional: only this header)</span>
              <input id="secret-header" value=${header} placeholder="Authorization" spellcheck=${false}
                onInput=${(e) => setHeader(e.target.value)} />
            </label>
          </div>
          <label>Hosts <span class="hint">(names or *.wildcards, comma-separated; the value goes nowhere else)</span>
            <input id="secret-hosts" required value=${hosts} placeholder="api.github.com, *.example.org"
              spellcheck=${false} onInput=${(e) => setHosts(e.target.value)} />
          </label>`}
      <label>Value <span class="hint">(write-only: never shown again)</span>
        <input id="secret-value" type="password" required autocomplete="new-password" value=${value}
          onInput=${(e) => setValue(e.target.value)} />
      </label>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <div class="actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button class="primary" type="submit" id="secret-save" disabled=${busy}>${rotating ? "Rotate" : "Create"}</button>
      </div>
    </form>
  </${Dialog}>`;
}

function SecretRow({ secret, now, onRotate, onDelete }) {
  return html`<tr data-secret=${secret.name} data-version=${secret.version}>
    <th scope="row" class="mono">${secret.name}</th>
    <td>${secret.hosts.map((h) => html`<span class="tag mono">${h}</span>`)}</td>
    <td>${secret.header ? html`<code>${secret.header}</code>` : html`<span class="sub">any header, basic auth, query</span>`}</td>
    <td class="num" data-field="version">${secret.version}</td>
    <td title=${secret.updated_at}>${age(secret.updated_at, now)} ago</td>
    <td class="row">
      <button type="button" aria-label=${`Rotate ${secret.name}`} onClick=${onRotate}>Rotate…</button>
      <button type="button" class="destructive" aria-label=${`Delete ${secret.name}`} onClick=${onDelete}>Delete…</button>
    </td>
  </tr>`;
}

export function SecretsView({ api }) {
  const [list, setList] = useState(null);
  const [error, setError] = useState(null);
  const [editing, setEditing] = useState(null); // {} to create, a secret to rotate
  const [deleting, setDeleting] = useState(null);
  const [message, setMessage] = useState("");
  const load = () => api.secrets().then(setList, (err) => setError(errorText(err)));
  useEffect(() => {
    load();
  }, [api]);
  const now = Date.now();

  return html`<section class="view" id="secrets-view" aria-labelledby="secrets-title" aria-busy=${list ? "false" : "true"}>
    <div class="view-head"><h2 id="secrets-title">Secrets</h2>
      <span class="sub">Shells get a placeholder; the host puts the value into HTTPS requests to the secret's hosts.</span>
      <div class="spacer"></div>
      <button class="primary" type="button" id="secret-new" onClick=${() => setEditing({})}>New secret</button>
    </div>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <p class="sr-only" role="status" id="secrets-status">${message}</p>
    ${list &&
    html`<section class="panel"><table id="secrets-table">
      <caption class="sr-only">The tenant's secrets, never their values</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Hosts</th><th scope="col">Header</th>
        <th scope="col" class="num">Version</th><th scope="col">Updated</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>
        ${list.length === 0 && html`<tr><td class="empty" colspan="6">No secrets yet.</td></tr>`}
        ${list.map(
          (s) => html`<${SecretRow} key=${s.name} secret=${s} now=${now}
            onRotate=${() => setEditing(s)} onDelete=${() => setDeleting(s)} />`,
        )}
      </tbody>
    </table></section>`}
    ${editing &&
    html`<${SecretDialog} api=${api} rotating=${editing.name ? editing : null} onClose=${() => setEditing(null)}
      onSaved=${(s) => {
        setEditing(null);
        setMessage(`${s.name} saved (version ${s.version})`);
        load();
      }} />`}
    ${deleting &&
    html`<${ConfirmDelete} id="secret-delete" what=${deleting.name} onClose=${() => setDeleting(null)}
      text="Shells created with it keep their placeholder, which from their next request leaves unchanged."
      onConfirm=${async () => {
        await api.deleteSecret(deleting.name);
        setDeleting(null);
        setMessage(`${deleting.name} deleted`);
        load();
      }} />`}
  </section>`;
}
