// Term credentials: minted short-lived, shown masked until revealed, with a live countdown; once
// expired they are visibly dead. Nothing durable to steal later.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { Dialog } from "./dialog.js";
import { countdown, errorText } from "./format.js";

const TTLS = [
  [60, "1 minute"],
  [300, "5 minutes"],
  [900, "15 minutes"],
];

export function CredentialsDialog({ api, shell, onClose }) {
  const [ttl, setTtl] = useState(300);
  const [cred, setCred] = useState(null);
  const [revealed, setRevealed] = useState(false);
  const [copied, setCopied] = useState(false);
  const [error, setError] = useState(null);
  const [now, setNow] = useState(Date.now());

  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(t);
  }, []);

  async function mint() {
    setError(null);
    setRevealed(false);
    setCopied(false);
    try {
      setCred(await api.mintTerm(shell.id, ttl));
    } catch (err) {
      setError(errorText(err));
    }
  }

  async function copy() {
    await navigator.clipboard.writeText(cred.token);
    setCopied(true);
  }

  const left = cred ? Date.parse(cred.expires_at) - now : 0;
  const dead = cred && left <= 0;
  return html`<${Dialog} id="credentials" title="Term credentials" onClose=${onClose}>
    <p>
      A credential opens one live terminal session on <strong>${shell.name}</strong> and dies when it
      expires. Copy what you need now.
    </p>
    <div class="row">
      <label>Lifetime
        <select id="cred-ttl" value=${ttl} onChange=${(e) => setTtl(Number(e.target.value))}>
          ${TTLS.map(([s, label]) => html`<option value=${s}>${label}</option>`)}
        </select>
      </label>
      <button class="primary" type="button" id="mint" onClick=${mint}>${cred ? "Mint another" : "Mint"}</button>
    </div>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${cred &&
    html`<div class="credential ${dead ? "dead" : ""}" id="credential" data-expired=${dead ? "true" : "false"}>
      <div class="cred-id">id <code>${cred.id}</code></div>
      <code class="secret" id="cred-token" aria-label=${revealed && !dead ? "Credential" : "Credential (hidden)"}>
        ${revealed && !dead ? cred.token : "•".repeat(24) + cred.token.slice(-4)}
      </code>
      <div class="row">
        <button type="button" id="cred-reveal" aria-pressed=${revealed && !dead} disabled=${dead}
          onClick=${() => setRevealed(!revealed)}>${revealed ? "Hide" : "Reveal"}</button>
        <button type="button" id="cred-copy" disabled=${dead} onClick=${copy}>${copied ? "Copied" : "Copy"}</button>
        <span class="countdown" id="cred-countdown" role="timer" aria-live="off">
          ${dead ? "Expired: this credential is dead" : `expires in ${countdown(left)}`}
        </span>
      </div>
      <p class="hint">Use it with <code>${cred.url}</code> (first message <code>{"type":"auth","token":…}</code>).</p>
    </div>`}
  </${Dialog}>`;
}
