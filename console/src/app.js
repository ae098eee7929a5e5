// The console: sign-in, then the views: the fleet (kept live by the event feed) with the create
// dialog and the detail sheet of the selected shell, templates, usage, pricing, the tenant's secrets, volumes
// and webhooks. Only public endpoints are used.
import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { Api } from "./api.js";
import { CreateDialog } from "./create.js";
import { DetailSheet } from "./detail.js";
import { follow } from "./feed.js";
import { Fleet } from "./fleet.js";
import { PricingView } from "./pricing.js";
import { SecretsView } from "./secrets.js";
import { VolumesView } from "./storage.js";
import { TemplatesView } from "./templates.js";
import { forgetToken, savedToken, SignIn } from "./signin.js";
import { preference, setPreference } from "./theme.js";
import { UsageView } from "./usage.js";
import { WebhooksView } from "./webhooks.js";

const VIEWS = [
  ["fleet", "Fleet"],
  ["templates", "Templates"],
  ["usage", "Usage"],
  ["pricing", "Pricing"],
  ["secrets", "Secrets"],
  ["volumes", "Volumes"],
  ["webhooks", "Webhooks"],
];

function ViewNav({ view, onView }) {
  return html`<nav class="views" aria-label="Views">
    ${VIEWS.map(
      ([key, label]) => html`<button type="button" id=${`view-${key}`} aria-current=${view === key ? "page" : undefined}
        onClick=${() => onView(key)}>${label}</button>`,
    )}
  </nav>`;
}

function ThemePicker() {
  const [pref, setPref] = useState(preference());
  return html`<label class="inline">Theme
    <select id="theme" value=${pref} onChange=${(e) => { setPreference(e.target.value); setPref(e.target.value); }}>
      <option value="system">System</option>
      <option value="light">Light</option>
      <option value="dark">Dark</option>
    </select>
  </label>`;
}

function Console({ api, onSignOut }) {
  const [info, setInfo] = useState(null);
  const [runtimes, setRuntimes] = useState(null);
  const [shells, setShells] = useState({});
  const [status, setStatus] = useState("connecting");
  const [selected, setSelected] = useState(null);
  const [creating, setCreating] = useState(false);
  const [message, setMessage] = useState("");
  const [view, setView] = useState("fleet");
  const listeners = useRef(new Set());

  const subscribe = (fn) => {
    listeners.current.add(fn);
    return () => listeners.current.delete(fn);
  };
  const put = (shell) =>
    setShells((all) => {
      const next = { ...all };
      if (shell.state === "deleted") delete next[shell.id];
      else next[shell.id] = shell;
      return next;
    });

  useEffect(() => {
    api.info().then(setInfo);
    api.runtimes().then(setRuntimes, () => setRuntimes(null));
    return follow(api, {
      onReady: async () => {
        const list = await api.shells();
        setShells(Object.fromEntries(list.map((s) => [s.id, s])));
      },
      onItem: (item) => {
        put(item.shell);
        listeners.current.forEach((fn) => fn(item));
      },
      onStatus: (s, err) => {
        setStatus(s);
        if (s === "denied") setMessage(`Signed out: ${err.message}`);
      },
    });
  }, [api]);

  const shell = selected && shells[selected];
  return html`<div class="app">
    <header class="topbar">
      <h1><span class="logo" aria-hidden="true">❯_</span> Shells</h1>
      <span class="live live-${status}" id="feed-status" role="status">${status === "live" ? "● live" : status}</span>
      <${ViewNav} view=${view} onView=${setView} />
      <div class="spacer"></div>
      <${ThemePicker} />
      <span class="sub mono" title="Signed in with this token">${api.token.slice(0, 12)}…</span>
      <button type="button" id="sign-out" onClick=${onSignOut}>Sign out</button>
    </header>
    <div class="sr-only" aria-live="polite" id="announce">${message}</div>
    ${view === "usage" && html`<main class="layout"><${UsageView} api=${api} shells=${shells} /></main>`}
    ${view === "pricing" && html`<main class="layout"><${PricingView} api=${api} /></main>`}
    ${view === "templates" && html`<main class="layout"><${TemplatesView} api=${api} /></main>`}
    ${view === "secrets" && html`<main class="layout"><${SecretsView} api=${api} /></main>`}
    ${view === "webhooks" && html`<main class="layout"><${WebhooksView} api=${api} /></main>`}
    ${view === "volumes" && html`<main class="layout"><${VolumesView} api=${api} /></main>`}
    ${view === "fleet" &&
    html`<main class="layout ${shell ? "with-sheet" : ""}">
      <${Fleet} shells=${shells} selected=${selected} onSelect=${setSelected} onCreate=${() => setCreating(true)} />
      ${shell && info &&
      html`<${DetailSheet} key=${shell.id} api=${api} info=${info} shell=${shell} subscribe=${subscribe}
        announce=${setMessage} onClose=${() => setSelected(null)} />`}
    </main>`}
    ${creating && info &&
    html`<${CreateDialog} api=${api} info=${info} runtimes=${runtimes} onClose=${() => setCreating(false)}
      onCreated=${(s) => {
        put(s);
        setCreating(false);
        setSelected(s.id);
        setMessage(`${s.name} is ${s.state}`);
      }} />`}
  </div>`;
}

export function App() {
  const [api, setApi] = useState(() => {
    const token = savedToken();
    return token ? new Api(token) : null;
  });
  if (!api) return html`<${SignIn} onSignedIn=${setApi} />`;
  return html`<${Console} api=${api} onSignOut=${() => { forgetToken(); setApi(null); }} />`;
}
