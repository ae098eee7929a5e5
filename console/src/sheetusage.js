// The detail sheet's usage slot: what this shell has been billed since it was created (seconds and
// cost, from GET /v1/usage grouped by shell), re-read when its state changes and every few seconds
// while it runs, because a running shell's bill grows by the second.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { errorText, longDuration, usd } from "./format.js";

const RUNNING_REFRESH_MS = 5000;

export function ShellUsage({ api, shell }) {
  const [usage, setUsage] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let live = true;
    const load = () =>
      api.usage({ from: shell.created_at, group_by: "shell" }).then(
        (r) => {
          if (!live) return;
          setUsage({ line: r.lines.find((l) => l.key === shell.id), owner: r.owner });
          setError(null);
        },
        (err) => live && setError(errorText(err)),
      );
    load();
    const t = shell.state === "running" ? setInterval(load, RUNNING_REFRESH_MS) : null;
    return () => {
      live = false;
      if (t) clearInterval(t);
    };
  }, [shell.id, shell.state]);

  if (error) return html`<p class="error">${error}</p>`;
  if (!usage) return html`<p class="sub">Reading usage…</p>`;
  if (!usage.line && usage.owner && usage.owner !== shell.owner) {
    return html`<p class="sub">Only the shell's owner or a tenant admin sees its usage.</p>`;
  }
  const line = usage.line || { seconds: 0, cost_usd: "0.000000" };
  return html`<p class="usage-line" id="shell-usage" data-seconds=${line.seconds} data-cost=${line.cost_usd}
    title="Billed per second while running; nothing while paused or stopped.">
    <span>Billed <strong id="shell-usage-seconds">${line.seconds.toFixed(3)} s</strong> <span class="sub">${longDuration(line.seconds)}</span></span>
    <span>Cost so far <strong id="shell-usage-cost">${usd(line.cost_usd)}</strong></span>
    <span class="sub">${shell.runtime} rate, ${shell.shape}</span>
  </p>`;
}
