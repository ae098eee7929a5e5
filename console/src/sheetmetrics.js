// The detail sheet's metrics: the shell's CPU, memory and disk over the last ten minutes (sampled on
// the host every few seconds, GET /v1/shells/{id}/metrics), as three small line charts in plain SVG
// with the newest value beside each; re-read every 5 s while the shell runs or is paused.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { errorText } from "./format.js";

const REFRESH_MS = 5000;
const WINDOW_S = 600;
const W = 200;
const H = 36;

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** The SVG path of `values` (nulls break the line) scaled to the box, time on x. */
export function linePath(points, top) {
  if (!points.length) return "";
  const t0 = points[0].at;
  const span = Math.max(1, points[points.length - 1].at - t0);
  let d = "";
  let pen = false;
  for (const p of points) {
    if (p.v === null || p.v === undefined) {
      pen = false;
      continue;
    }
    const x = ((p.at - t0) / span) * W;
    const y = H - 2 - (Math.min(p.v, top) / top) * (H - 4);
    d += `${pen ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)} `;
    pen = true;
  }
  return d.trim();
}

function Spark({ id, label, samples, field, top, show }) {
  const points = samples.map((s) => ({ at: s.at, v: s[field] }));
  const last = points.length ? points[points.length - 1].v : null;
  const peak = points.reduce((m, p) => (p.v !== null && p.v > m ? p.v : m), 0);
  const scale = top === undefined ? Math.max(1, peak * 1.5) : Math.max(top, peak);
  const text = `${label}: ${show(last)} now, peak ${show(peak)}`;
  return html`<figure class="spark" id=${id} data-last=${last === null ? "" : last} data-count=${points.length}>
    <figcaption><span>${label}</span> <strong>${show(last)}</strong></figcaption>
    <svg viewBox="0 0 ${W} ${H}" role="img" aria-label=${text} preserveAspectRatio="none">
      <title>${text}</title>
      <path d=${linePath(points, scale)} class="line" />
    </svg>
  </figure>`;
}

export function ShellMetrics({ api, shell }) {
  const [samples, setSamples] = useState(null);
  const [error, setError] = useState(null);
  const live = shell.state === "running" || shell.state === "paused";
  useEffect(() => {
    let on = true;
    const load = () =>
      api.metrics(shell.id, Date.now() / 1000 - WINDOW_S).then(
        (r) => {
          if (!on) return;
          setSamples(r.samples);
          setError(null);
        },
        (err) => on && setError(errorText(err)),
      );
    load();
    const t = live ? setInterval(load, REFRESH_MS) : null;
    return () => {
      on = false;
      if (t) clearInterval(t);
    };
  }, [shell.id, shell.state]);

  if (error) return html`<p class="error">${error}</p>`;
  if (!samples) return html`<p class="sub">Reading metrics…</p>`;
  if (!samples.length) return html`<p class="sub" id="shell-metrics-empty">No samples yet: a running or paused shell is sampled every few seconds.</p>`;
  const pct = (v) => (v === null || v === undefined ? "–" : `${v.toFixed(1)} %`);
  return html`<div class="sparks" id="shell-metrics" title="Read on the host; the last ten minutes">
    <${Spark} id="metric-cpu" label="CPU" samples=${samples} field="cpu_percent" top=${100} show=${pct} />
    <${Spark} id="metric-memory" label="Memory" samples=${samples} field="memory_bytes" show=${bytes} />
    <${Spark} id="metric-disk" label="Disk" samples=${samples} field="disk_bytes" show=${bytes} />
  </div>`;
}
