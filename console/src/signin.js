// Sign-in with an API token. The token is kept in sessionStorage only: it is gone when the browser
// session ends, and never written to a cookie the server would have to trust.
import { html } from "htm/preact";
import { useState } from "preact/hooks";
import { Api } from "./api.js";
import { errorText } from "./format.js";

const KEY = "shells.token";

export const savedToken = () => sessionStorage.getItem(KEY);
export const forgetToken = () => sessionStorage.removeItem(KEY);

export function SignIn({ onSignedIn }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  async function submit(e) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const api = new Api(token.trim());
    try {
      await api.shells(); // proves the token and its read scope
      sessionStorage.setItem(KEY, api.token);
      onSignedIn(api);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  }

  return html`<main class="signin">
    <form class="card" onSubmit=${submit} aria-describedby="signin-help">
      <h1><span class="logo" aria-hidden="true">❯_</span> Shells</h1>
      <p id="signin-help">
        Sign in with an API token. The console sees exactly what the token may see; the token is kept for
        this browser session only.
      </p>
      <label for="token">API token</label>
      <input
        id="token"
        name="token"
        type="password"
        autocomplete="off"
        spellcheck="false"
        placeholder="shl_…"
        required
        value=${token}
        onInput=${(e) => setToken(e.target.value)}
      />
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <button class="primary" type="submit" disabled=${busy}>${busy ? "Signing in…" : "Sign in"}</button>
      <p class="hint">The admin token of a local server is in <code>~/.local/share/shells/admin-token</code>.</p>
    </form>
  </main>`;
}
