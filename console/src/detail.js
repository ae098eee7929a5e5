// The detail sheet of one shell: its facts, resources, network policy and blocked attempts, the actions,
// its storage (below the actions, so a laptop window shows the terminal button without scrolling), metrics,
// the activity terminal, an interactive terminal, credentials and the danger zone.
import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { Activity } from "./activity.js";
import { CredentialsDialog } from "./credentials.js";
import { DangerZone } from "./danger.js";
import { Badge } from "./fleet.js";
import { clock, errorText, eventLine } from "./format.js";
import { ShellMetrics } from "./sheetmetrics.js";
import { ShellUsage } from "./sheetusage.js";
import { ShellStorage } from "./storage.js";
import { ShellTerminal } from "./terminal.js";

const ACTIONS = [
  ["restart", "Restart"],
  ["snapshot", "Snapshot"],
  ["logs", "Fetch logs"],
  ["reinstall_os", "Reinstall OS"],
  ["pause", "Pause"],
  ["resume", "Resume"],
  ["fork", "Fork"],
];
const MAX_LINES = 2000;

function useActivity(api, shellId, subscribe) {
  const [lines, setLines] = useState([]);
  const seen = useRef(new Set());
  const counter = useRef(0);
  const push = (text, kind = "") =>
    setLines((ls) => [...ls, { key: `l${counter.current++}`, text, kind }].slice(-MAX_LINES));
  const pushEvent = (e) => {
    if (seen.current.has(e.id)) return;
    seen.current.add(e.id);
    push(eventLine(e), e.outcome === "ok" || e.kind === "state" ? "event" : "event warn");
  };
  useEffect(() => {
    seen.current = new Set();
    setLines([]);
    let live = true;
    const unsubscribe = subscribe((item) => item.event.shell_id === shellId && pushEvent(item.event));
    api
      .events(shellId)
      .then((events) => live && events.slice(-300).forEach(pushEvent))
      .catch((err) => push(errorText(err), "error"));
    return () => {
      live = false;
      unsubscribe();
    };
  }, [shellId]);
  return [lines, push];
}

function Facts({ shell, info }) {
  const shape = info.shapes[shell.shape];
  const details = shell.runtime_details || (info.runtimes[shell.runtime] || {}).details || {};
  const rows = [
    ["State", html`<${Badge} state=${shell.state} /> ${shell.state_reason && html`<span class="sub">${shell.state_reason}</span>`}`],
    ["Runtime", html`${shell.runtime} ${Object.entries(details).map(([k, v]) => html`<span class="tag">${k}: ${v}</span>`)}`],
    ["Template", html`<span class="mono">${shell.template}</span>`],
    ["Language", shell.language],
    ["Shape", shape ? `${shell.shape} · ${shape.vcpus} vCPU · ${shape.memory_mib} MiB` : shell.shape],
    ["Region", shell.region],
    ["Node", html`<span class="mono">${shell.node}</span>`],
    ["Owner", shell.owner],
    ["Created", new Date(shell.created_at).toLocaleString()],
    ["Wake", shell.auto_resume ? "on request to an exposed port" : "only when resumed"],
  ];
  return html`<dl class="facts">${rows.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`;
}

function Network({ api, shell, version }) {
  const [net, setNet] = useState(null);
  useEffect(() => {
    api.network(shell.id).then(setNet, () => setNet(null));
  }, [shell.id, version]);
  const policy = shell.network;
  return html`<section aria-labelledby="net-title">
    <h3 id="net-title">Network</h3>
    <p>
      <span class="tag">${policy.mode}</span>
      ${policy.mode === "internet" &&
      (policy.allow.length ? policy.allow.map((a) => html`<code class="tag">${a}</code>`) : " every public address")}
    </p>
    ${net && net.addresses && net.addresses.ipv4 && html`<p class="sub">address <code>${net.addresses.ipv4}</code></p>`}
    <h4>Blocked attempts</h4>
    ${net && net.blocked.length
      ? html`<table class="small" id="blocked">
          <thead><tr><th scope="col">Destination</th><th scope="col">Proto</th><th scope="col">Count</th><th scope="col">Last</th></tr></thead>
          <tbody>${net.blocked.map(
            (b) => html`<tr><td class="mono">${b.destination}${b.port ? `:${b.port}` : ""}</td><td>${b.protocol}</td><td class="num">${b.count}</td><td>${clock(b.last_seen)}</td></tr>`,
          )}</tbody>
        </table>`
      : html`<p class="sub">None recorded.</p>`}
  </section>`;
}

export function DetailSheet({ api, info, shell, subscribe, onClose, announce }) {
  const [lines, push] = useActivity(api, shell.id, subscribe);
  const [terminal, setTerminal] = useState(false);
  const [creds, setCreds] = useState(false);
  const [busy, setBusy] = useState(null);
  const [forks, setForks] = useState(1);
  const capabilities = (info.runtimes[shell.runtime] || {}).capabilities || [];

  async function run(capability, params = {}) {
    setBusy(capability);
    push(`$ ${capability}${params.count ? ` --count ${params.count}` : ""}`, "cmd");
    try {
      const r = capability === "delete" ? await api.remove(shell.id) : await api.act(shell.id, capability, params);
      const result = (r && r.result) || {};
      if (result.logs !== undefined) result.logs.split("\n").slice(-200).forEach((l) => push(l, "out"));
      if (result.snapshot) push(`snapshot ${result.snapshot.id} taken`, "ok");
      const children = result.shells || (r && r.shells) || [];
      children.forEach((c) => push(`fork ${c.name} (${c.id}) ${c.state}`, "ok"));
      push(`${capability}: done`, "ok");
      announce(`${capability} done on ${shell.name}`);
      if (capability === "delete") onClose();
    } catch (err) {
      push(`${capability}: ${errorText(err)}`, "error");
      announce(`${capability} failed: ${err.message}`);
    } finally {
      setBusy(null);
    }
  }

  const why = (cap) => (capabilities.includes(cap) ? "" : `${shell.runtime} shells cannot ${cap.replace("_", " ")}.`);
  const running = shell.state === "running";

  return html`<aside class="sheet" id="detail" aria-labelledby="detail-title" data-shell=${shell.id}>
    <header class="sheet-head">
      <div>
        <h2 id="detail-title">${shell.name}</h2>
        <div class="sub mono">${shell.id}</div>
      </div>
      <button type="button" class="icon" aria-label="Close details" onClick=${onClose}>✕</button>
    </header>
    <${Facts} shell=${shell} info=${info} />
    <section aria-labelledby="res-title">
      <h3 id="res-title">Resources</h3>
      <div class="usage-slot" data-slot="usage" id="usage-slot">
        <${ShellUsage} api=${api} shell=${shell} />
      </div>
    </section>
    <${Network} api=${api} shell=${shell} version=${lines.length} />
    <section aria-labelledby="actions-title">
      <h3 id="actions-title">Actions</h3>
      <div class="toolbar" role="toolbar" aria-label="Actions">
        ${ACTIONS.map(([cap, label]) => {
          const reason = why(cap) || (cap === "resume" && shell.state !== "paused" ? "Only a paused shell resumes." : "");
          return html`<button type="button" id=${`act-${cap}`} disabled=${!!reason || busy !== null}
            title=${reason} aria-describedby=${reason ? `act-why-${cap}` : undefined}
            onClick=${() => run(cap, cap === "fork" ? { count: forks } : {})}>
            ${busy === cap ? `${label}…` : label}
            ${reason && html`<span class="sr-only" id=${`act-why-${cap}`}>${reason}</span>`}
          </button>`;
        })}
        <label class="inline">× <input type="number" min="1" max="16" value=${forks} aria-label="Fork count"
          disabled=${!capabilities.includes("fork")} onInput=${(e) => setForks(Number(e.target.value) || 1)} /></label>
      </div>
      <div class="toolbar">
        <button type="button" id="open-terminal" disabled=${!running || terminal} onClick=${() => setTerminal(true)}>
          Open terminal
        </button>
        <button type="button" id="open-credentials" disabled=${!running} onClick=${() => setCreds(true)}>
          Credentials…
        </button>
      </div>
    </section>
    <${ShellStorage} api=${api} shell=${shell} version=${lines.length} />
    <section aria-labelledby="metrics-title">
      <h3 id="metrics-title">Metrics <span class="hint">last 10 minutes, read on the host</span></h3>
      <${ShellMetrics} api=${api} shell=${shell} />
    </section>
    <${Activity} lines=${lines} />
    ${terminal && html`<${ShellTerminal} api=${api} shell=${shell} log=${push} onClose=${() => setTerminal(false)} />`}
    <${DangerZone} shell=${shell} onConfirm=${(what) => run(what)} />
    ${creds && html`<${CredentialsDialog} api=${api} shell=${shell} onClose=${() => setCreds(false)} />`}
  </aside>`;
}
