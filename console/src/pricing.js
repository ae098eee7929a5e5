// The Pricing view: GET /v1/pricing rendered as the rates of each isolation class, the hourly price of
// each shape in each class, and the runtime matrix (language x class: available, version, notes) with
// the price of a cell at a chosen shape. The rate depends on the class and the shape, never the language.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { CLASSES } from "./fleet.js";
import { errorText, usd } from "./format.js";
import { LANGUAGES } from "./matrix.js";

function Rates({ pricing }) {
  return html`<section class="panel" aria-labelledby="rates-title">
    <h3 id="rates-title">Rates by isolation class</h3>
    <table class="small" id="rates">
      <caption class="sr-only">Price per vCPU and per GiB of memory, per hour and per second</caption>
      <thead><tr>
        <th scope="col">Class</th><th scope="col" class="num">$ / vCPU-hour</th><th scope="col" class="num">$ / GiB-hour</th>
        <th scope="col" class="num">$ / vCPU-second</th><th scope="col" class="num">$ / GiB-second</th>
      </tr></thead>
      <tbody>${CLASSES.map((k) => {
        const r = pricing.classes[k];
        return html`<tr data-class=${k}>
          <th scope="row">${k}</th>
          <td class="num" data-rate="vcpu_hour_usd">${r.vcpu_hour_usd}</td><td class="num" data-rate="gib_hour_usd">${r.gib_hour_usd}</td>
          <td class="num">${r.vcpu_second_usd}</td><td class="num">${r.gib_second_usd}</td>
        </tr>`;
      })}</tbody>
    </table>
    <p class="sub">Billed ${pricing.billing}. Snapshot storage ${usd(pricing.snapshot_gib_month_usd)} per GiB-month; free tier ${usd(pricing.free_tier_usd)} a month unless your tenant has its own.</p>
  </section>`;
}

function Shapes({ pricing }) {
  return html`<section class="panel" aria-labelledby="shapes-title">
    <h3 id="shapes-title">Each shape, per hour of running</h3>
    <table class="small" id="shape-prices">
      <caption class="sr-only">Hourly price of each shape in each class</caption>
      <thead><tr><th scope="col">Shape</th><th scope="col" class="num">vCPUs</th><th scope="col" class="num">Memory</th>
        ${CLASSES.map((k) => html`<th scope="col" class="num">${k} $/h</th>`)}</tr></thead>
      <tbody>${pricing.shapes.map(
        (s) => html`<tr data-shape=${s.name}>
          <th scope="row" class="mono">${s.name}</th><td class="num">${s.vcpus}</td><td class="num">${s.memory_mib} MiB</td>
          ${CLASSES.map((k) => html`<td class="num" data-class=${k}>${s.hour_usd[k]}</td>`)}
        </tr>`,
      )}</tbody>
    </table>
  </section>`;
}

function Matrix({ pricing }) {
  const [shape, setShape] = useState(pricing.shapes[0].name);
  const hour = pricing.shapes.find((s) => s.name === shape).hour_usd;
  const cell = (lang, k) => pricing.runtimes.find((r) => r.language === lang && r.runtime === k);
  return html`<section class="panel" aria-labelledby="matrix-title">
    <div class="panel-head">
      <h3 id="matrix-title">Languages × classes on this host</h3>
      <label class="inline">Price at shape
        <select id="matrix-shape" value=${shape} onChange=${(e) => setShape(e.target.value)}>
          ${pricing.shapes.map((s) => html`<option value=${s.name}>${s.name}</option>`)}
        </select>
      </label>
    </div>
    <div class="table-wrap">
      <table class="small matrix" id="runtime-matrix">
        <caption class="sr-only">Which language runs in which isolation class, its version, and the hourly price at the chosen shape</caption>
        <thead><tr><th scope="col">Language</th>
          ${CLASSES.map((k) => html`<th scope="col" data-class=${k}>${k} <span class="hint">${usd(hour[k])}/h</span></th>`)}</tr></thead>
        <tbody>${LANGUAGES.map(
          (lang) => html`<tr data-language=${lang}>
            <th scope="row">${lang}</th>
            ${CLASSES.map((k) => {
              const c = cell(lang, k);
              const ok = c && c.available;
              return html`<td data-class=${k} data-available=${ok ? "true" : "false"}>
                <span class=${ok ? "state-running" : "state-failed"}>${ok ? "✓ available" : "✗ not available"}</span>
                ${c && c.version && html` <span class="tag">${c.version}</span>`}
                ${c && c.notes && html`<div class="sub wrap">${c.notes}</div>`}
              </td>`;
            })}
          </tr>`,
        )}</tbody>
      </table>
    </div>
  </section>`;
}

export function PricingView({ api }) {
  const [pricing, setPricing] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api.pricing().then(setPricing, (err) => setError(errorText(err)));
  }, [api]);
  return html`<section class="view" id="pricing-view" aria-labelledby="pricing-title" aria-busy=${pricing ? "false" : "true"}>
    <div class="view-head"><h2 id="pricing-title">Pricing</h2>
      ${pricing && html`<span class="sub">${pricing.currency}, billed per second</span>`}</div>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${pricing &&
    html`<${Rates} pricing=${pricing} />
      <${Shapes} pricing=${pricing} />
      <${Matrix} pricing=${pricing} />`}
  </section>`;
}
