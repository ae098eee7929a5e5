// Cost by day as a bar chart in plain SVG (no chart library): one bar per UTC day of the period, days
// without usage included, so gaps show. Hovering a bar shows its numbers; the same numbers are a
// table under "Show as table" for keyboards and screen readers.
import { html } from "htm/preact";
import { duration, micros, usd } from "./format.js";

const W = 640;
const H = 150;
const AXIS = 18;

/** Every UTC day from the period's start to its end, as "YYYY-MM-DD" (the keys of group_by=day). */
export function days(from, to) {
  const out = [];
  const day = new Date(from.slice(0, 10) + "T00:00:00Z");
  const last = new Date(to).getTime();
  while (day.getTime() < last || out.length === 0) {
    out.push(day.toISOString().slice(0, 10));
    day.setUTCDate(day.getUTCDate() + 1);
  }
  return out;
}

export function DayChart({ report }) {
  const lines = Object.fromEntries(report.lines.map((l) => [l.key, l]));
  const keys = days(report.from, report.to);
  const max = report.lines.reduce((m, l) => (micros(l.cost_usd) > m ? micros(l.cost_usd) : m), 0n);
  const slot = W / keys.length;
  const bar = Math.max(2, slot * 0.7);
  return html`<section class="panel" aria-labelledby="by-day-title">
    <h3 id="by-day-title">By day <span class="hint">cost, UTC days</span></h3>
    <figure class="chart">
      <svg id="usage-days" viewBox="0 0 ${W} ${H + AXIS}" role="img" aria-labelledby="by-day-title by-day-max">
        <line x1="0" y1=${H} x2=${W} y2=${H} class="axis" />
        ${keys.map((k, i) => {
          const l = lines[k];
          const cost = l ? micros(l.cost_usd) : 0n;
          const h = max ? Math.max(cost ? 1 : 0, (Number(cost) / Number(max)) * (H - 8)) : 0;
          const x = i * slot + (slot - bar) / 2;
          return html`<g class="day" data-day=${k} data-cost=${l ? l.cost_usd : "0.000000"}>
            <title>${k}: ${usd(l ? l.cost_usd : "0.000000")}, ${duration(l ? l.seconds : 0)}</title>
            <rect x=${x} y=${H - h} width=${bar} height=${h} class="bar" />
            <rect x=${i * slot} y="0" width=${slot} height=${H} class="hit" />
            ${(i === 0 || i === keys.length - 1 || keys.length <= 10) &&
            html`<text x=${i * slot + slot / 2} y=${H + AXIS - 4} text-anchor="middle">${k.slice(8)}</text>`}
          </g>`;
        })}
      </svg>
      <figcaption class="sub" id="by-day-max">Highest day ${usd(max ? report.lines.find((l) => micros(l.cost_usd) === max).cost_usd : "0.000000")}</figcaption>
    </figure>
    <details>
      <summary>Show as table</summary>
      <table class="small" id="usage-days-table">
        <thead><tr><th scope="col">Day (UTC)</th><th scope="col" class="num">Billed seconds</th><th scope="col" class="num">Cost</th></tr></thead>
        <tbody>${report.lines.map(
          (l) => html`<tr><td>${l.key}</td><td class="num">${l.seconds.toFixed(3)}</td><td class="num">${usd(l.cost_usd)}</td></tr>`,
        )}</tbody>
      </table>
    </details>
  </section>`;
}
