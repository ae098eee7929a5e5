// An interactive terminal into a shell: xterm.js over the terminal WebSocket, with a credential
// minted for this session only. The credential travels in the first message, never in the URL.
import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import { errorText } from "./format.js";

export const TERMINAL_THEME = {
  background: "#0b0d10",
  foreground: "#d7dde4",
  cursor: "#7ee787",
  selectionBackground: "#2f3b4a",
};
const TTL_S = 900;

export function ShellTerminal({ api, shell, onClose, log }) {
  const host = useRef(null);
  const [status, setStatus] = useState("connecting");

  useEffect(() => {
    const term = new Terminal({
      theme: TERMINAL_THEME,
      fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace",
      fontSize: 13,
      cursorBlink: true,
      screenReaderMode: false,
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(host.current);
    fit.fit();
    let ws = null;
    let done = false;
    const encoder = new TextEncoder();
    const send = (data) => ws && ws.readyState === WebSocket.OPEN && ws.send(data);
    term.onData((d) => send(encoder.encode(d)));
    term.onResize(({ cols, rows }) => send(JSON.stringify({ type: "resize", cols, rows })));
    const resize = new ResizeObserver(() => fit.fit());
    resize.observe(host.current);

    api
      .mintTerm(shell.id, TTL_S)
      .then((cred) => {
        if (done) return;
        const url = new URL(cred.url, location.href);
        url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
        url.search = `cols=${term.cols}&rows=${term.rows}`;
        ws = new WebSocket(url);
        ws.binaryType = "arraybuffer";
        ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: cred.token }));
        ws.onmessage = (m) => {
          if (typeof m.data !== "string") return term.write(new Uint8Array(m.data));
          const msg = JSON.parse(m.data);
          if (msg.type === "ready") {
            setStatus("connected");
            term.focus();
          } else if (msg.type === "exit") {
            setStatus(`exited (${msg.exit_code ?? msg.signal})`);
          } else if (msg.type === "error") {
            log(`terminal: ${msg.error.message}`, "error");
          }
        };
        ws.onclose = (e) => {
          if (done) return;
          setStatus((s) => (s.startsWith("exited") ? s : e.code === 4401 ? "credential expired" : "closed"));
        };
      })
      .catch((err) => {
        setStatus("refused");
        log(`terminal: ${errorText(err)}`, "error");
      });

    return () => {
      done = true;
      resize.disconnect();
      if (ws) ws.close();
      term.dispose();
    };
  }, [shell.id]);

  return html`<section class="terminal-panel" aria-labelledby="term-title">
    <div class="panel-head">
      <h3 id="term-title">Terminal</h3>
      <span class="term-status" role="status" id="term-status">${status}</span>
      <button type="button" onClick=${onClose}>Close terminal</button>
    </div>
    <div class="xterm-host" ref=${host} id="terminal" aria-label="Interactive terminal into ${shell.name}"></div>
  </section>`;
}
