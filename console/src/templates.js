// The Templates view: every template the caller can use (GET /v1/templates) with its kind, status and
// size, and for one imported from an image or built from a Dockerfile its source image and digest.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { errorText } from "./format.js";

/** Ready templates a new shell may start from, for the create dialog (built-ins included). */
export function readyTemplates(list) {
  return list.filter((t) => t.status === "ready").map((t) => t.name);
}

function mib(bytes) {
  return bytes == null ? "—" : `${(bytes / (1024 * 1024)).toFixed(0)} MiB`;
}

function Source({ t }) {
  if (!t.image) return html`<span class="sub">${t.parent ? `on ${t.parent}` : "—"}</span>`;
  return html`<span class="mono" data-field="source">${t.image.source}</span>`;
}

export function TemplatesView({ api }) {
  const [templates, setTemplates] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api.get("/v1/templates").then((r) => setTemplates(r.templates), (e) => setError(errorText(e)));
  }, [api]);
  if (error) return html`<p class="error" role="alert">${error}</p>`;
  if (!templates) return html`<p class="sub">Loading templates…</p>`;
  return html`<section class="panel" aria-labelledby="templates-title">
    <h3 id="templates-title">Templates</h3>
    <p class="sub">Import an image with <code>shells template import REF NAME:TAG</code>, build one with
      <code>shells template build -f Dockerfile NAME:TAG</code>.</p>
    <table class="small" id="templates">
      <thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Status</th>
        <th scope="col">Source</th><th scope="col">Digest</th><th scope="col" class="num">Size</th></tr></thead>
      <tbody>${templates.map(
        (t) => html`<tr data-template=${t.name}>
          <th scope="row" class="mono">${t.name}</th><td>${t.kind}</td><td>${t.status}</td>
          <td><${Source} t=${t} /></td>
          <td class="mono" data-field="digest" title=${(t.image && t.image.digest) || ""}>
            ${t.image && t.image.digest ? t.image.digest.slice(0, 19) + "…" : "—"}</td>
          <td class="num">${mib(t.size_bytes)}</td>
        </tr>`,
      )}</tbody>
    </table>
  </section>`;
}
