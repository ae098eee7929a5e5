// The fleet: every shell the token can see, kept current by the live feed.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { age } from "./format.js";

export const STATES = ["creating", "running", "paused", "stopped", "failed", "lost"];
export const CLASSES = ["wasm", "container", "microvm"];

export function Badge({ state }) {
  return html`<span class="badge state-${state}" data-state=${state}>${state}</span>`;
}

function useNow(ms) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

export function Fleet({ shells, selected, onSelect, onCreate }) {
  const [state, setState] = useState("");
  const [klass, setKlass] = useState("");
  const [newestFirst, setNewestFirst] = useState(true);
  const now = useNow(1000);

  const rows = Object.values(shells)
    .filter((s) => (!state || s.state === state) && (!klass || s.runtime === klass))
    .sort((a, b) => (newestFirst ? -1 : 1) * (Date.parse(a.created_at) - Date.parse(b.created_at)));

  return html`<section class="fleet" aria-labelledby="fleet-title">
    <div class="fleet-head">
      <h2 id="fleet-title">Fleet <span class="count">${rows.length}</span></h2>
      <div class="filters">
        <label>State
          <select id="filter-state" value=${state} onChange=${(e) => setState(e.target.value)}>
            <option value="">all</option>
            ${STATES.map((s) => html`<option value=${s}>${s}</option>`)}
          </select>
        </label>
        <label>Class
          <select id="filter-class" value=${klass} onChange=${(e) => setKlass(e.target.value)}>
            <option value="">all</option>
            ${CLASSES.map((c) => html`<option value=${c}>${c}</option>`)}
          </select>
        </label>
        <button class="primary" type="button" id="new-shell" onClick=${onCreate}>New shell</button>
      </div>
    </div>
    <div class="table-wrap">
      <table id="fleet-table">
        <caption class="sr-only">Shells, updating live</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Status</th>
            <th scope="col">Class</th>
            <th scope="col">Language</th>
            <th scope="col">Network</th>
            <th scope="col">Region</th>
            <th scope="col">Node</th>
            <th scope="col" aria-sort=${newestFirst ? "ascending" : "descending"}>
              <button type="button" class="sort" id="sort-age" onClick=${() => setNewestFirst(!newestFirst)}>
                Age <span aria-hidden="true">${newestFirst ? "↑" : "↓"}</span>
              </button>
            </th>
          </tr>
        </thead>
        <tbody>
          ${rows.map(
            (s) => html`<tr
              key=${s.id}
              data-shell=${s.id}
              data-state=${s.state}
              class=${s.id === selected ? "selected" : ""}
            >
              <td>
                <button type="button" class="link" onClick=${() => onSelect(s.id)}>${s.name}</button>
                ${s.name !== s.id && html`<div class="sub mono">${s.id}</div>`}
              </td>
              <td><${Badge} state=${s.state} /></td>
              <td>${s.runtime}</td>
              <td>${s.language}</td>
              <td>${s.network.mode}</td>
              <td>${s.region}</td>
              <td class="mono" data-node=${s.node}>${s.node}</td>
              <td class="num">${age(s.created_at, now)}</td>
            </tr>`,
          )}
          ${rows.length === 0 &&
          html`<tr>
            <td colspan="8" class="empty">No shells${state || klass ? " match the filters" : " yet"}.</td>
          </tr>`}
        </tbody>
      </table>
    </div>
  </section>`;
}
