// The Webhooks view: the tenant's callbacks (URL, events), create one with the events to hear (the
// signing secret is shown once, in the create's answer, then never again), delete one, read a
// webhook's delivery log (refreshed while open) and queue a "test" delivery into it.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { ConfirmDelete, Dialog } from "./dialog.js";
import { age, clock, errorText } from "./format.js";

/** The server's webhook events (domain/webhooks.py WEBHOOK_EVENTS), in its order. */
export const WEBHOOK_EVENTS = [
  "created", "running", "paused", "resumed", "stopped", "deleted", "lost", "failed", "budget_reached",
];
const REFRESH_MS = 2000;

function WebhookDialog({ api, onClose, onCreated }) {
  const [url, setUrl] = useState("");
  const [events, setEvents] = useState(WEBHOOK_EVENTS);
  const [secret, setSecret] = useState("");
  const [made, setMade] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);

  async function submit(e) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const all = events.length === WEBHOOK_EVENTS.length;
      const hook = await api.createWebhook({ url, events: all ? ["*"] : events, ...(secret ? { secret } : {}) });
      setSecret("");
      setMade(hook);
      onCreated(hook);
    } catch (err) {
      setError(errorText(err));
    }
    setBusy(false);
  }
  const toggle = (name, on) => setEvents(WEBHOOK_EVENTS.filter((x) => (x === name ? on : events.includes(x))));

  if (made) {
    return html`<${Dialog} id="webhook-create" title="Webhook created" onClose=${onClose}>
      <div class="credential" id="webhook-made" data-webhook=${made.id}>
        <p>Deliveries to <code>${made.url}</code> carry <code>Shells-Webhook-Signature</code>, an HMAC-SHA256
          with this secret. Copy it now: it is not shown again.</p>
        <code class="secret" id="webhook-secret-once">${made.secret}</code>
        <div class="row">
          <button type="button" onClick=${() => navigator.clipboard.writeText(made.secret)}>Copy</button>
          <button class="primary" type="button" id="webhook-done" onClick=${onClose}>Done</button>
        </div>
      </div>
    </${Dialog}>`;
  }
  return html`<${Dialog} id="webhook-create" title="New webhook" onClose=${onClose}>
    <form onSubmit=${submit} autocomplete="off">
      <label>URL <span class="hint">(http or https, outside this server)</span>
        <input id="webhook-url" type="url" required value=${url} placeholder="https://hooks.example.org/shells"
          onInput=${(e) => setUrl(e.target.value)} />
      </label>
      <fieldset id="webhook-events">
        <legend>Events</legend>
        <div class="choices">
          ${WEBHOOK_EVENTS.map(
            (name) => html`<label class="choice">
              <input type="checkbox" name="event" value=${name} checked=${events.includes(name)}
                onChange=${(e) => toggle(name, e.target.checked)} /> ${name}
            </label>`,
          )}
        </div>
      </fieldset>
      <label>Signing secret <span class="hint">(optional: left empty, the server makes one and shows it once)</span>
        <input id="webhook-secret" type="password" autocomplete="new-password" value=${secret}
          onInput=${(e) => setSecret(e.target.value)} />
      </label>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <div class="actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button class="primary" type="submit" id="webhook-save" disabled=${busy || events.length === 0}>Create</button>
      </div>
    </form>
  </${Dialog}>`;
}

function Deliveries({ api, hook }) {
  const [log, setLog] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    const load = () => api.deliveries(hook.id).then(setLog, (err) => setError(errorText(err)));
    load();
    const t = setInterval(load, REFRESH_MS);
    return () => clearInterval(t);
  }, [api, hook.id]);
  return html`<section class="panel" id="deliveries" data-webhook=${hook.id} aria-labelledby="deliveries-title">
    <h3 id="deliveries-title">Deliveries to ${hook.url}</h3>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${log &&
    html`<table class="small" id="deliveries-table">
      <caption class="sr-only">The delivery log, newest first</caption>
      <thead><tr><th scope="col">Id</th><th scope="col">Event</th><th scope="col">Shell</th><th scope="col">State</th>
        <th scope="col" class="num">Attempts</th><th scope="col">Last answer</th><th scope="col">Queued</th></tr></thead>
      <tbody>
        ${log.length === 0 && html`<tr><td class="empty" colspan="7">Nothing delivered yet.</td></tr>`}
        ${log.map(
          (d) => html`<tr data-delivery=${d.id} data-event=${d.event} data-state=${d.state}>
            <td class="mono">${d.id}</td><td>${d.event}</td><td class="mono">${d.shell_id || "—"}</td>
            <td><span class=${`badge state-${d.state === "delivered" ? "running" : d.state === "failed" ? "failed" : "paused"}`}>${d.state}</span>
              ${d.next_at && html` <span class="sub">next ${clock(d.next_at)}</span>`}</td>
            <td class="num">${d.attempts}</td>
            <td class="wrap">${d.last_status ?? ""} ${d.last_error}</td>
            <td title=${d.created_at}>${clock(d.created_at)}</td>
          </tr>`,
        )}
      </tbody>
    </table>`}
  </section>`;
}

export function WebhooksView({ api }) {
  const [list, setList] = useState(null);
  const [error, setError] = useState(null);
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState(null);
  const [shown, setShown] = useState(null);
  const [message, setMessage] = useState("");
  const load = () => api.webhooks().then(setList, (err) => setError(errorText(err)));
  useEffect(() => {
    load();
  }, [api]);
  const now = Date.now();
  const hook = list && list.find((h) => h.id === shown);

  async function sendTest(h) {
    try {
      const d = await api.testWebhook(h.id);
      setShown(h.id);
      setMessage(`test delivery ${d.id} queued for ${h.url}`);
    } catch (err) {
      setError(errorText(err));
    }
  }

  return html`<section class="view" id="webhooks-view" aria-labelledby="webhooks-title" aria-busy=${list || error ? "false" : "true"}>
    <div class="view-head"><h2 id="webhooks-title">Webhooks</h2>
      <span class="sub">Each shell event, POSTed as signed JSON, in order per shell, retried for a day.</span>
      <div class="spacer"></div>
      <button class="primary" type="button" id="webhook-new" onClick=${() => setCreating(true)}>New webhook</button>
    </div>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <p class="sr-only" role="status" id="webhooks-status">${message}</p>
    ${list &&
    html`<section class="panel"><table id="webhooks-table">
      <caption class="sr-only">The tenant's webhooks</caption>
      <thead><tr><th scope="col">URL</th><th scope="col">Events</th><th scope="col">Created</th>
        <th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>
        ${list.length === 0 && html`<tr><td class="empty" colspan="4">No webhooks yet.</td></tr>`}
        ${list.map(
          (h) => html`<tr key=${h.id} data-webhook=${h.id} class=${h.id === shown ? "selected" : ""}>
            <th scope="row" class="mono wrap">${h.url}</th>
            <td>${h.events.map((e) => html`<span class="tag">${e}</span>`)}</td>
            <td title=${h.created_at}>${age(h.created_at, now)} ago</td>
            <td class="row">
              <button type="button" aria-label=${`Deliveries of ${h.url}`} aria-pressed=${h.id === shown}
                onClick=${() => setShown(h.id === shown ? null : h.id)}>Deliveries</button>
              <button type="button" aria-label=${`Send a test to ${h.url}`} onClick=${() => sendTest(h)}>Send test</button>
              <button type="button" class="destructive" aria-label=${`Delete ${h.url}`} onClick=${() => setDeleting(h)}>Delete…</button>
            </td>
          </tr>`,
        )}
      </tbody>
    </table></section>`}
    ${hook && html`<${Deliveries} key=${hook.id} api=${api} hook=${hook} />`}
    ${creating &&
    html`<${WebhookDialog} api=${api} onClose=${() => setCreating(false)} onCreated=${(h) => {
      setMessage(`webhook ${h.id} created`);
      load();
    }} />`}
    ${deleting &&
    html`<${ConfirmDelete} id="webhook-delete" what=${deleting.url} onClose=${() => setDeleting(null)}
      text="Its pending deliveries are not sent and its delivery log goes with it."
      onConfirm=${async () => {
        await api.deleteWebhook(deleting.id);
        if (shown === deleting.id) setShown(null);
        setDeleting(null);
        setMessage("webhook deleted");
        load();
      }} />`}
  </section>`;
}
