// Storage in the console: the Volumes view (the tenant's volumes: create, delete; and its stored
// bucket credentials: store a key pair once, delete it), the create dialog's storage choices (volumes
// to attach, a bucket to mount, a bucket to mirror /workspace to, both with stored credentials by
// name) and the detail sheet's storage section (its volumes, mounts and how far its sync is).
// A secret key is typed into a password field, sent once and never shown again.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { ConfirmDelete, Dialog } from "./dialog.js";
import { age, clock, errorText } from "./format.js";

const GIB = 1024 ** 3;
const size = (bytes) => (bytes == null ? "–" : bytes >= GIB ? `${(bytes / GIB).toFixed(2)} GiB` : `${Math.ceil(bytes / 1024 ** 2)} MiB`);

function VolumeDialog({ api, onClose, onSaved }) {
  const [name, setName] = useState("");
  const [gib, setGib] = useState(1);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  async function submit(e) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onSaved(await api.createVolume({ name, size_gib: gib }));
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  }
  return html`<${Dialog} id="volume-create" title="New volume" onClose=${onClose} className="narrow">
    <form onSubmit=${submit} autocomplete="off">
      <label>Name <input id="volume-name" required value=${name} placeholder="results" spellcheck=${false}
        onInput=${(e) => setName(e.target.value)} /></label>
      <label>Size <span class="hint">(GiB, enforced on the host)</span>
        <input id="volume-size" type="number" min="1" required value=${gib} onInput=${(e) => setGib(Number(e.target.value))} />
      </label>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <div class="actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button class="primary" type="submit" id="volume-save" disabled=${busy}>Create</button>
      </div>
    </form>
  </${Dialog}>`;
}

function KeyDialog({ api, onClose, onSaved }) {
  const [name, setName] = useState("");
  const [keyId, setKeyId] = useState("");
  const [secret, setSecret] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  async function submit(e) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const saved = await api.createBucketCredentials({ name, access_key_id: keyId, secret_access_key: secret });
      setSecret("");
      onSaved(saved);
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  }
  return html`<${Dialog} id="bucket-key-create" title="New bucket credentials" onClose=${onClose} className="narrow">
    <form onSubmit=${submit} autocomplete="off">
      <label>Name <span class="hint">(mounts and syncs name it)</span>
        <input id="bucket-key-name" required value=${name} placeholder="team-r2" spellcheck=${false}
          onInput=${(e) => setName(e.target.value)} /></label>
      <label>Access key id <input id="bucket-key-id" required value=${keyId} spellcheck=${false}
        onInput=${(e) => setKeyId(e.target.value)} /></label>
      <label>Secret access key <span class="hint">(write-only: never shown again)</span>
        <input id="bucket-key-secret" type="password" required autocomplete="new-password" value=${secret}
          onInput=${(e) => setSecret(e.target.value)} /></label>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <div class="actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button class="primary" type="submit" id="bucket-key-save" disabled=${busy}>Store</button>
      </div>
    </form>
  </${Dialog}>`;
}

export function VolumesView({ api }) {
  const [volumes, setVolumes] = useState(null);
  const [keys, setKeys] = useState([]);
  const [error, setError] = useState(null);
  const [dialog, setDialog] = useState(null); // "volume" | "key"
  const [deleting, setDeleting] = useState(null); // {kind, name}
  const [message, setMessage] = useState("");
  const load = () => {
    api.volumes().then(setVolumes, (err) => setError(errorText(err)));
    api.bucketCredentials().then(setKeys, () => setKeys([]));
  };
  useEffect(load, [api]);
  const now = Date.now();
  const saved = (what) => {
    setDialog(null);
    setMessage(what);
    load();
  };

  return html`<section class="view" id="volumes-view" aria-labelledby="volumes-title" aria-busy=${volumes ? "false" : "true"}>
    <div class="view-head"><h2 id="volumes-title">Volumes</h2>
      <span class="sub">Filesystems of the tenant that outlive every shell; kept in the object store when a writer lets go.</span>
      <div class="spacer"></div>
      <button class="primary" type="button" id="volume-new" onClick=${() => setDialog("volume")}>New volume</button>
    </div>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <p class="sr-only" role="status" id="volumes-status">${message}</p>
    ${volumes &&
    html`<section class="panel"><table id="volumes-table">
      <caption class="sr-only">The tenant's volumes</caption>
      <thead><tr><th scope="col">Name</th><th scope="col" class="num">Size</th><th scope="col" class="num">Used</th>
        <th scope="col">Shells</th><th scope="col">In the object store</th><th scope="col">Created</th>
        <th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>
        ${volumes.length === 0 && html`<tr><td class="empty" colspan="7">No volumes yet.</td></tr>`}
        ${volumes.map(
          (v) => html`<tr key=${v.name} data-volume=${v.name}>
            <th scope="row" class="mono">${v.name}</th>
            <td class="num">${v.size_gib} GiB</td>
            <td class="num">${size(v.used_bytes)}</td>
            <td>${v.attached.length
              ? v.attached.map((a) => html`<span class="tag mono" title=${a.read_only ? "read-only" : "read-write"}>${a.shell_id}${a.read_only ? " (ro)" : ""}</span>`)
              : html`<span class="sub">none</span>`}</td>
            <td data-field="durable">${v.durable_at ? html`<span title=${v.durable_at}>${size(v.stored_bytes)}, ${age(v.durable_at, now)} ago</span>` : html`<span class="sub">not yet</span>`}</td>
            <td title=${v.created_at}>${age(v.created_at, now)} ago</td>
            <td><button type="button" class="destructive" aria-label=${`Delete volume ${v.name}`}
              onClick=${() => setDeleting({ kind: "volume", name: v.name })}>Delete…</button></td>
          </tr>`,
        )}
      </tbody>
    </table></section>`}
    <div class="view-head"><h3 id="bucket-keys-title">Bucket credentials</h3>
      <span class="sub">S3 key pairs stored once; a mount or a sync names them. Secrets are never shown.</span>
      <div class="spacer"></div>
      <button type="button" id="bucket-key-new" onClick=${() => setDialog("key")}>New credentials</button>
    </div>
    <section class="panel"><table id="bucket-keys-table" aria-labelledby="bucket-keys-title">
      <thead><tr><th scope="col">Name</th><th scope="col">Access key id</th><th scope="col">Created</th>
        <th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>
        ${keys.length === 0 && html`<tr><td class="empty" colspan="4">No stored credentials.</td></tr>`}
        ${keys.map(
          (k) => html`<tr key=${k.name} data-bucket-key=${k.name}>
            <th scope="row" class="mono">${k.name}</th><td class="mono">${k.access_key_id}</td>
            <td title=${k.created_at}>${age(k.created_at, now)} ago</td>
            <td><button type="button" class="destructive" aria-label=${`Delete credentials ${k.name}`}
              onClick=${() => setDeleting({ kind: "key", name: k.name })}>Delete…</button></td>
          </tr>`,
        )}
      </tbody>
    </table></section>
    ${dialog === "volume" && html`<${VolumeDialog} api=${api} onClose=${() => setDialog(null)} onSaved=${(v) => saved(`${v.name} created`)} />`}
    ${dialog === "key" && html`<${KeyDialog} api=${api} onClose=${() => setDialog(null)} onSaved=${(k) => saved(`${k.name} stored`)} />`}
    ${deleting &&
    html`<${ConfirmDelete} id="storage-delete" what=${deleting.name} onClose=${() => setDeleting(null)}
      text=${deleting.kind === "volume"
        ? "Its files are gone for good, here and in the object store; a shell that holds it must be deleted first."
        : "Shells created with them keep their own copy; new creates cannot name them."}
      onConfirm=${async () => {
        await (deleting.kind === "volume" ? api.deleteVolume(deleting.name) : api.deleteBucketCredentials(deleting.name));
        setDeleting(null);
        setMessage(`${deleting.name} deleted`);
        load();
      }} />`}
  </section>`;
}

/** The create dialog's storage: what it adds to the body of POST /v1/shells. */
export function storageBody({ attach, mount, sync }) {
  const body = {};
  const volumes = Object.entries(attach).map(([name, a]) => ({ name, path: a.path, read_only: a.read_only }));
  if (volumes.length) body.volumes = volumes;
  if (mount.bucket) {
    body.mounts = [{ bucket: mount.bucket, endpoint: mount.endpoint, path: mount.path, read_only: mount.read_only,
      ...(mount.prefix ? { prefix: mount.prefix } : {}), credentials: mount.credentials }];
  }
  if (sync.bucket) {
    body.sync = { bucket: sync.bucket, endpoint: sync.endpoint, credentials: sync.credentials,
      ...(sync.prefix ? { prefix: sync.prefix } : {}) };
  }
  return body;
}

export const NO_STORAGE = { attach: {}, mount: { path: "/data", read_only: false }, sync: {} };

function KeyChoice({ id, keys, value, onChange }) {
  return html`<label>Credentials <span class="hint">(stored ones, see Volumes)</span>
    <select id=${id} value=${value || ""} onChange=${(e) => onChange(e.target.value)}>
      <option value="">choose…</option>
      ${keys.map((k) => html`<option value=${k.name}>${k.name} (${k.access_key_id})</option>`)}
    </select></label>`;
}

/** Volumes to attach, a bucket to mount and a bucket to sync /workspace to (container shells). */
export function StorageChoice({ api, storage, setStorage }) {
  const [volumes, setVolumes] = useState([]);
  const [keys, setKeys] = useState([]);
  useEffect(() => {
    api.volumes().then(setVolumes, () => setVolumes([]));
    api.bucketCredentials().then(setKeys, () => setKeys([]));
  }, [api]);
  const { attach, mount, sync } = storage;
  const setAttach = (name, a) => {
    const next = { ...attach };
    if (a) next[name] = a;
    else delete next[name];
    setStorage({ ...storage, attach: next });
  };
  const setMount = (k, v) => setStorage({ ...storage, mount: { ...mount, [k]: v } });
  const setSync = (k, v) => setStorage({ ...storage, sync: { ...sync, [k]: v } });
  const field = (id, label, value, set, extra = {}) => html`<label>${label}
    <input id=${id} value=${value || ""} spellcheck=${false} ...${extra} onInput=${(e) => set(e.target.value)} /></label>`;

  return html`<fieldset id="storage-choice">
    <legend>Storage <span class="hint">(container shells)</span></legend>
    <h4>Volumes</h4>
    ${volumes.length === 0 && html`<p class="hint" id="volume-choice-none">No volumes in this tenant yet (see Volumes).</p>`}
    ${volumes.map((v) => {
      const a = attach[v.name];
      return html`<div class="row" data-volume-choice=${v.name}>
        <label class="choice"><input type="checkbox" name="volume" value=${v.name} checked=${!!a}
          onChange=${(e) => setAttach(v.name, e.target.checked ? { path: `/mnt/${v.name}`, read_only: false } : null)} />
          <span class="mono">${v.name}</span> <span class="why">${v.size_gib} GiB</span></label>
        ${a && html`<input aria-label=${`Path of ${v.name}`} value=${a.path} onInput=${(e) => setAttach(v.name, { ...a, path: e.target.value })} />
          <label class="choice"><input type="checkbox" aria-label=${`${v.name} read-only`} checked=${a.read_only}
            onChange=${(e) => setAttach(v.name, { ...a, read_only: e.target.checked })} /> read-only</label>`}
      </div>`;
    })}
    <h4>Bucket mount <span class="hint">(your S3-compatible bucket at a path; the keys stay on the host)</span></h4>
    <div class="grid2">
      ${field("mount-bucket", "Bucket", mount.bucket, (v) => setMount("bucket", v))}
      ${field("mount-endpoint", "Endpoint", mount.endpoint, (v) => setMount("endpoint", v), { placeholder: "https://s3.example.com" })}
      ${field("mount-prefix", "Prefix", mount.prefix, (v) => setMount("prefix", v))}
      ${field("mount-path", "Path", mount.path, (v) => setMount("path", v))}
      <${KeyChoice} id="mount-credentials" keys=${keys} value=${mount.credentials} onChange=${(v) => setMount("credentials", v)} />
      <label class="choice"><input type="checkbox" id="mount-read-only" checked=${mount.read_only}
        onChange=${(e) => setMount("read_only", e.target.checked)} /> read-only</label>
    </div>
    <h4>Workspace sync <span class="hint">(/workspace mirrored to your bucket)</span></h4>
    <div class="grid2">
      ${field("sync-bucket", "Bucket", sync.bucket, (v) => setSync("bucket", v))}
      ${field("sync-endpoint", "Endpoint", sync.endpoint, (v) => setSync("endpoint", v), { placeholder: "https://s3.example.com" })}
      ${field("sync-prefix", "Prefix", sync.prefix, (v) => setSync("prefix", v))}
      <${KeyChoice} id="sync-credentials" keys=${keys} value=${sync.credentials} onChange=${(v) => setSync("credentials", v)} />
    </div>
  </fieldset>`;
}

/** The detail sheet's storage: the shell's volumes and bucket mounts, and its sync's progress. */
export function ShellStorage({ api, shell, version }) {
  const [sync, setSync] = useState(null);
  useEffect(() => {
    api.syncStatus(shell.id).then(setSync, () => setSync(null));
  }, [shell.id, version]);
  const volumes = shell.volumes || [];
  const mounts = shell.mounts || [];
  return html`<section aria-labelledby="storage-title" id="shell-storage">
    <h3 id="storage-title">Storage</h3>
    ${volumes.length === 0 && mounts.length === 0 && html`<p class="sub">No volumes or bucket mounts.</p>`}
    <ul class="plain">
      ${volumes.map((v) => html`<li data-kind="volume"><code>${v.path}</code> volume <span class="mono">${v.name}</span> ${v.read_only ? "(read-only)" : ""}</li>`)}
      ${mounts.map((m) => html`<li data-kind="mount"><code>${m.path}</code> bucket <span class="mono">${m.bucket}${m.prefix ? `/${m.prefix}` : ""}</span> at ${m.endpoint} ${m.read_only ? "(read-only)" : ""}</li>`)}
    </ul>
    <h4>Workspace sync</h4>
    ${sync && sync.enabled
      ? html`<dl class="facts" id="sync-status" data-state=${sync.state}>
          <dt>Bucket</dt><dd class="mono">${sync.bucket}${sync.prefix ? `/${sync.prefix}` : ""}</dd>
          <dt>State</dt><dd>${sync.state}</dd>
          <dt>Synced</dt><dd>${sync.synced_files} files, ${size(sync.synced_bytes)}; ${sync.pending_files} pending</dd>
          <dt>Last pass</dt><dd>${sync.last_synced_at ? clock(sync.last_synced_at) : "not yet"}</dd>
          ${sync.last_error && html`<dt>Last error</dt><dd class="error">${sync.last_error_code}: ${sync.last_error}</dd>`}
        </dl>`
      : html`<p class="sub" id="sync-status" data-state="off">Off.</p>`}
  </section>`;
}
