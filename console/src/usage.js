// The Usage view: this month so far (cost and billed seconds), by class, by day and by shell, a CSV
// export, and the tenant's free tier and budget cap when the token may see billing. Everything comes
// from GET /v1/usage (the first report fixes the period, the others reuse it, so all of them add up)
// and GET /v1/tenants/{name}/billing.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { DayChart } from "./chart.js";
import { duration, errorText, fromMicros, longDuration, micros, usd } from "./format.js";

const REFRESH_MS = 15000;
const GROUPS = ["shell", "class", "day", "principal"];

async function loadUsage(api) {
  const byClass = await api.usage({ group_by: "class" });
  const period = { from: byClass.from, to: byClass.to };
  const [byDay, byShell] = await Promise.all([
    api.usage({ ...period, group_by: "day" }),
    api.usage({ ...period, group_by: "shell" }),
  ]);
  return { period, byClass, byDay, byShell, billing: await loadBilling(api, byClass) };
}

/** The month's terms as the report saw them (same instant, so its numbers agree with the report's),
 * or, when the report has none, why not: the billing endpoint's answer to this token. */
async function loadBilling(api, report) {
  if (report.month) return { terms: { ...report.month, tenant: report.tenant } };
  try {
    return { terms: await api.billing(report.tenant) };
  } catch (err) {
    return { hidden: err };
  }
}

function Summary({ report }) {
  const total = report.total;
  return html`<dl class="stats" id="usage-summary">
    <div><dt>Cost, month to date</dt><dd id="usage-cost">${usd(total.cost_usd)}</dd></div>
    <div><dt>Billed seconds</dt><dd id="usage-seconds">${total.seconds.toFixed(3)} s <span class="sub">${longDuration(total.seconds)}</span></dd></div>
    <div><dt>vCPU-seconds</dt><dd>${total.vcpu_seconds.toFixed(3)}</dd></div>
    <div><dt>GiB-seconds</dt><dd>${total.gib_seconds.toFixed(3)}</dd></div>
  </dl>
  ${report.owner && html`<p class="sub">The shells this token owns (${report.owner}); a tenant admin sees the whole tenant.</p>`}`;
}

/** Free tier and budget cap, with what is left of each; or why this token cannot see them. */
function Billing({ billing }) {
  if (billing.hidden) {
    return html`<section class="panel" id="billing" aria-labelledby="billing-title" data-visible="false">
      <h3 id="billing-title">Free tier and budget</h3>
      <p class="sub" id="billing-hidden">Not shown to this token: ${billing.hidden.message}</p>
    </section>`;
  }
  const t = billing.terms;
  const cost = micros(t.cost_usd);
  const free = micros(t.free_tier_usd);
  const freeLeft = free > cost ? free - cost : 0n;
  const cap = t.budget_usd === null ? null : free + micros(t.budget_usd);
  const capLeft = cap === null ? null : cap > cost ? cap - cost : 0n;
  return html`<section class="panel" id="billing" aria-labelledby="billing-title" data-visible="true">
    <h3 id="billing-title">Free tier and budget <span class="hint">tenant ${t.tenant}, this month</span></h3>
    <dl class="stats">
      <div><dt>Free tier</dt><dd id="billing-free">${usd(t.free_tier_usd)}</dd></div>
      <div><dt>Free tier left</dt><dd id="billing-free-left">${usd(fromMicros(freeLeft))}</dd></div>
      <div><dt>Charged</dt><dd id="billing-charged">${usd(t.charged_usd)}</dd></div>
      <div><dt>Budget cap</dt><dd id="billing-budget">${t.budget_usd === null ? "none" : usd(t.budget_usd)}</dd></div>
      <div><dt>Left before the cap</dt><dd id="billing-left">${capLeft === null ? "no cap" : usd(fromMicros(capLeft))}</dd></div>
    </dl>
    ${cap !== null &&
    html`<label class="inline">Spent of free tier + budget
      <meter id="billing-meter" min="0" max=${Number(cap) || 1} low=${Number(cap) * 0.75} high=${Number(cap) * 0.9}
        optimum="0" value=${Number(cost)}>${usd(t.cost_usd)}</meter>
    </label>`}
    ${t.cap_reached &&
    html`<p class="error" role="alert">The budget cap is reached: running shells were paused or stopped, and new ones are refused until it is raised.</p>`}
  </section>`;
}

function ByClass({ report }) {
  const max = report.lines.reduce((m, l) => (micros(l.cost_usd) > m ? micros(l.cost_usd) : m), 0n);
  return html`<section class="panel" aria-labelledby="by-class-title">
    <h3 id="by-class-title">By class</h3>
    ${report.lines.length === 0 && html`<p class="sub">Nothing ran this month.</p>`}
    <ul class="hbars" id="usage-classes">
      ${report.lines.map(
        (l) => html`<li data-class=${l.key}>
          <span class="hbar-label">${l.key}</span>
          <span class="hbar" aria-hidden="true"><span style=${`width: ${max ? Number((micros(l.cost_usd) * 1000n) / max) / 10 : 0}%`}></span></span>
          <span class="num">${usd(l.cost_usd)}</span>
          <span class="num sub">${duration(l.seconds)}</span>
        </li>`,
      )}
    </ul>
  </section>`;
}

function ByShell({ report, shells }) {
  const lines = [...report.lines].sort((a, b) => {
    const d = micros(b.cost_usd) - micros(a.cost_usd);
    return d > 0n ? 1 : d < 0n ? -1 : 0;
  });
  return html`<section class="panel" aria-labelledby="by-shell-title">
    <h3 id="by-shell-title">By shell</h3>
    <div class="table-wrap">
      <table class="small" id="usage-shells">
        <caption class="sr-only">Cost and billed seconds of each shell this month, most expensive first</caption>
        <thead><tr><th scope="col">Shell</th><th scope="col">Class</th><th scope="col" class="num">Billed seconds</th><th scope="col" class="num">Cost</th></tr></thead>
        <tbody>
          ${lines.map((l) => {
            const s = shells[l.key];
            return html`<tr key=${l.key} data-shell=${l.key}>
              <td>${s ? s.name : html`<span class="sub">deleted</span>`} <span class="sub mono">${l.key}</span></td>
              <td>${s ? s.runtime : ""}</td>
              <td class="num" data-seconds=${l.seconds}>${l.seconds.toFixed(3)}</td>
              <td class="num" data-cost=${l.cost_usd}>${usd(l.cost_usd)}</td>
            </tr>`;
          })}
          ${lines.length === 0 && html`<tr><td colspan="4" class="empty">No shell ran this month.</td></tr>`}
        </tbody>
      </table>
    </div>
  </section>`;
}

function CsvExport({ api, period }) {
  const [group, setGroup] = useState("shell");
  const [error, setError] = useState(null);
  async function download() {
    setError(null);
    try {
      const { blob, name } = await api.usageCsv({ ...period, group_by: group });
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = name;
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    } catch (err) {
      setError(errorText(err));
    }
  }
  return html`<div class="row">
    <label class="inline">CSV by
      <select id="csv-group" value=${group} onChange=${(e) => setGroup(e.target.value)}>
        ${GROUPS.map((g) => html`<option value=${g}>${g}</option>`)}
      </select>
    </label>
    <button type="button" id="usage-csv" onClick=${download}>Download CSV</button>
    ${error && html`<span class="error" role="alert">${error}</span>`}
  </div>`;
}

export function UsageView({ api, shells }) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const refresh = () =>
    loadUsage(api).then(
      (d) => {
        setData(d);
        setError(null);
      },
      (err) => setError(errorText(err)),
    );
  useEffect(() => {
    refresh();
    const t = setInterval(refresh, REFRESH_MS);
    return () => clearInterval(t);
  }, [api]);

  return html`<section class="view" id="usage-view" aria-labelledby="usage-title" aria-busy=${data ? "false" : "true"}>
    <div class="view-head">
      <h2 id="usage-title">Usage</h2>
      ${data && html`<span class="sub">${new Date(data.period.from).toLocaleDateString()} to ${new Date(data.period.to).toLocaleString()} · tenant ${data.byClass.tenant}</span>`}
      <div class="spacer"></div>
      ${data && html`<${CsvExport} api=${api} period=${data.period} />`}
      <button type="button" id="usage-refresh" onClick=${refresh}>Refresh</button>
    </div>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${data &&
    html`<${Summary} report=${data.byClass} />
      <${Billing} billing=${data.billing} />
      <div class="grid2 top">
        <${ByClass} report=${data.byClass} />
        <${DayChart} report=${data.byDay} />
      </div>
      <${ByShell} report=${data.byShell} shells=${shells} />`}
  </section>`;
}
