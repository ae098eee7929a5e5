// The create dialog: language preset, isolation class, network (sealed by default; in internet mode
// the tenant's secrets to broker), shape, template (any ready one the caller can use: built-ins,
// imported images, Dockerfile builds, saved shells) and region (those GET /v1/info lists; the
// server's own first), and for container shells its storage: volumes, a bucket mount, workspace sync
// (storage.js).
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { Dialog } from "./dialog.js";
import { CLASSES } from "./fleet.js";
import { errorText } from "./format.js";
import { LANGUAGES, offer } from "./matrix.js";
import { NO_STORAGE, StorageChoice, storageBody } from "./storage.js";
import { readyTemplates } from "./templates.js";

const MODES = [
  ["sealed", "No network at all. The default."],
  ["localhost", "Loopback only: services talk to themselves."],
  ["internet", "Outbound access, optionally limited to an allow list."],
];

function AllowList({ entries, setEntries }) {
  const [draft, setDraft] = useState("");
  function add() {
    const v = draft.trim();
    if (v && !entries.includes(v)) setEntries([...entries, v]);
    setDraft("");
  }
  return html`<fieldset class="allowlist">
    <legend>Allow list <span class="hint">(empty: every public address)</span></legend>
    <ul aria-label="Allowed destinations">
      ${entries.map(
        (e) => html`<li key=${e}>
          <code>${e}</code>
          <button type="button" class="icon" aria-label=${`Remove ${e}`}
            onClick=${() => setEntries(entries.filter((x) => x !== e))}>✕</button>
        </li>`,
      )}
    </ul>
    <div class="row">
      <input id="allow-entry" aria-label="Destination to allow" placeholder="pypi.org, 1.2.3.0/24:443/tcp"
        value=${draft} onInput=${(e) => setDraft(e.target.value)}
        onKeyDown=${(e) => { if (e.key === "Enter") { e.preventDefault(); add(); } }} />
      <button type="button" onClick=${add}>Add</button>
    </div>
  </fieldset>`;
}

/** The tenant's secrets to give the shell, by name (it gets placeholders; the values stay on the host). */
function SecretChoice({ secrets, chosen, setChosen }) {
  if (secrets.length === 0) {
    return html`<p class="hint" id="secret-choice-none">No secrets in this tenant yet (see Secrets).</p>`;
  }
  return html`<fieldset id="secret-choice">
    <legend>Secrets <span class="hint">(the shell gets a placeholder; the host swaps in the value)</span></legend>
    <div class="choices">
      ${secrets.map(
        (s) => html`<label class="choice" title=${s.hosts.join(", ")}>
          <input type="checkbox" name="secret" value=${s.name} checked=${chosen.includes(s.name)}
            onChange=${(e) => setChosen(e.target.checked ? [...chosen, s.name] : chosen.filter((n) => n !== s.name))} />
          <span class="mono">${s.name}</span> <span class="why">${s.hosts.join(", ")}</span>
        </label>`,
      )}
    </div>
  </fieldset>`;
}

/** Create the shell; if its built-in template is not built yet (409 template_not_built), build it
 * first through the build stream, saying which step runs, then create. The API answers a create at
 * once rather than holding it open for minutes; a person watching the console can wait. */
async function createBuildingFirst(api, body, say) {
  try {
    return await api.create(body);
  } catch (err) {
    if (err.code !== "template_not_built" || !err.details.template) throw err;
    const t = err.details.template;
    const about = err.details.estimated_seconds ? ` (about ${err.details.estimated_seconds} s, once)` : "";
    say(`Building ${t}${about}…`);
    await api.buildTemplate(t, (s) => say(`Building ${t}: step ${s.index} of ${s.total}, ${s.name}`));
    say(`Built ${t}; starting the shell…`);
    return api.create(body);
  }
}

export function CreateDialog({ api, info, runtimes, onClose, onCreated }) {
  const firstClass = CLASSES.find((c) => offer(info, runtimes, "python", c).available) || "container";
  const [language, setLanguage] = useState("python");
  const [klass, setKlass] = useState(firstClass);
  const [mode, setMode] = useState("sealed");
  const [allow, setAllow] = useState([]);
  const [shape, setShape] = useState(Object.keys(info.shapes)[0]);
  const regions = Object.keys(info.regions || { [info.region]: {} });
  const [region, setRegion] = useState(regions.includes(info.region) ? info.region : regions[0]);
  const [name, setName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [building, setBuilding] = useState(null);
  const [template, setTemplate] = useState("");
  const [templates, setTemplates] = useState([]);
  const [secrets, setSecrets] = useState([]);
  const [chosenSecrets, setChosenSecrets] = useState([]);
  const [wake, setWake] = useState(true);
  const [storage, setStorage] = useState(NO_STORAGE);
  useEffect(() => {
    api.get("/v1/templates").then((r) => setTemplates(readyTemplates(r.templates)), () => setTemplates([]));
    api.secrets().then(setSecrets, () => setSecrets([]));
  }, [api]);
  const chosen = offer(info, runtimes, language, klass);
  const canPause = ((info.runtimes[klass] || {}).capabilities || []).includes("pause");

  async function submit(e) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const network = mode === "internet" ? { mode, allow } : { mode };
    const body = { language, runtime: klass, network, shape, ...(region ? { region } : {}) };
    try {
      const extra = {
        ...(name ? { name } : {}),
        ...(template ? { template } : {}),
        ...(mode === "internet" && chosenSecrets.length ? { secrets: chosenSecrets } : {}),
        ...(canPause && !wake ? { auto_resume: false } : {}),
        ...(klass === "container" ? storageBody(storage) : {}),
      };
      onCreated(await createBuildingFirst(api, { ...body, ...extra }, setBuilding));
    } catch (err) {
      setError(errorText(err));
      setBuilding(null);
      setBusy(false);
    }
  }

  return html`<${Dialog} id="create" title="New shell" onClose=${onClose}>
    <form class="create" onSubmit=${submit}>
      <fieldset>
        <legend>Language</legend>
        <div class="choices">
          ${LANGUAGES.map(
            (l) => html`<label class="choice">
              <input type="radio" name="language" value=${l} checked=${language === l}
                onChange=${() => setLanguage(l)} /> ${l}
            </label>`,
          )}
        </div>
      </fieldset>
      <fieldset>
        <legend>Isolation class</legend>
        <div class="choices">
          ${CLASSES.map((c) => {
            const o = offer(info, runtimes, language, c);
            return html`<label class="choice ${o.available ? "" : "disabled"}" title=${o.reason}>
              <input type="radio" name="runtime" value=${c} checked=${klass === c} disabled=${!o.available}
                aria-describedby=${`why-${c}`} onChange=${() => setKlass(c)} /> ${c}
              <span class="why" id=${`why-${c}`}>${o.available ? o.version || "" : o.reason}</span>
            </label>`;
          })}
        </div>
        ${chosen.available && chosen.reason && html`<p class="hint">${chosen.reason}</p>`}
      </fieldset>
      <fieldset>
        <legend>Network</legend>
        <div class="choices column">
          ${MODES.map(
            ([m, what]) => html`<label class="choice">
              <input type="radio" name="network" value=${m} checked=${mode === m}
                disabled=${!info.network_modes.includes(m)} onChange=${() => setMode(m)} />
              <strong>${m}</strong> <span class="why">${what}</span>
            </label>`,
          )}
        </div>
        ${mode === "internet" && html`<${AllowList} entries=${allow} setEntries=${setAllow} />`}
        ${mode === "internet" && html`<${SecretChoice} secrets=${secrets} chosen=${chosenSecrets} setChosen=${setChosenSecrets} />`}
      </fieldset>
      <div class="grid2">
        <label>Shape
          <select id="shape" value=${shape} onChange=${(e) => setShape(e.target.value)}>
            ${Object.entries(info.shapes).map(
              ([n, s]) => html`<option value=${n}>${n} (${s.vcpus} vCPU, ${s.memory_mib} MiB)</option>`,
            )}
          </select>
        </label>
        <label>Region
          <select id="region" value=${region} onChange=${(e) => setRegion(e.target.value)}>
            ${regions.map((r) => {
              const o = (info.regions || {})[r] || {};
              const what = o.runtimes ? ` (${o.runtimes.join(", ")})` : "";
              return html`<option value=${r}>${r}${what}</option>`;
            })}
          </select>
        </label>
        <label>Template <span class="hint">(imported images too)</span>
          <select id="template" value=${template} onChange=${(e) => setTemplate(e.target.value)}>
            <option value="">the language's preset</option>
            ${templates.map((t) => html`<option value=${t}>${t}</option>`)}
          </select>
        </label>
        <label>Name <span class="hint">(optional)</span>
          <input id="shell-name" value=${name} maxlength="63" pattern="[A-Za-z0-9._\\-]*"
            onInput=${(e) => setName(e.target.value)} />
        </label>
      </div>
      ${klass === "container" && html`<${StorageChoice} api=${api} storage=${storage} setStorage=${setStorage} />`}
      ${canPause &&
      html`<label class="choice" id="wake-choice">
        <input type="checkbox" id="auto-resume" checked=${wake} onChange=${(e) => setWake(e.target.checked)} />
        Wake on request <span class="why">a request to an exposed port resumes the shell when it is paused</span>
      </label>`}
      ${building && html`<p class="building" role="status" id="create-building">${building}</p>`}
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <div class="actions">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button class="primary" type="submit" id="create-submit" disabled=${busy || !chosen.available}>
          ${busy ? "Starting…" : "Create"}
        </button>
      </div>
    </form>
  </${Dialog}>`;
}
