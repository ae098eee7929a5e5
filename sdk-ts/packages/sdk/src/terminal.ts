// A live terminal over the server's WebSocket (protocol in src/shells/api/terminal_ws.py): binary
// frames are keystrokes one way and output the other; text frames are JSON control messages (`ready`,
// `resize`, `exit`, `error`). Node 20 has no WebSocket without a flag, hence the `ws` package.
import WebSocket from "ws";

import { ShellsError, Unavailable, errorFromWire } from "./errors.js";
import type { CallOptions } from "./http.js";
import type { TermCredential } from "./models.js";

export interface TerminalOptions extends CallOptions {
  cols?: number;
  rows?: number;
  /** Receives the terminal's output as it comes. */
  onData?: (data: Uint8Array) => void;
}

export interface TerminalExit {
  exitCode: number;
  signal: number | null;
}

/** An open terminal session. `write` sends keystrokes, `resize` the window; `exited` resolves when the
 * shell's process ends and rejects when the session fails (expired or revoked credential, a lost
 * connection); `close` leaves without ending the process. */
export class Terminal {
  readonly #socket: WebSocket;
  /** When the credential stops working (ISO 8601), from the server's `ready`. */
  readonly expiresAt: string;
  readonly exited: Promise<TerminalExit>;

  private constructor(socket: WebSocket, expiresAt: string, exited: Promise<TerminalExit>) {
    this.#socket = socket;
    this.expiresAt = expiresAt;
    this.exited = exited;
  }

  /** Attach to the terminal a credential opens. Rejects with the credential's error
   * (`CredentialExpired`, `CredentialInUse`, …) or `Unavailable`. */
  static open(credential: TermCredential, options: TerminalOptions = {}): Promise<Terminal> {
    const url = new URL(credential.url);
    url.searchParams.set("cols", String(options.cols ?? 80));
    url.searchParams.set("rows", String(options.rows ?? 24));
    const socket = new WebSocket(url);
    socket.binaryType = "nodebuffer";
    return new Promise<Terminal>((resolve, reject) => {
      let ended: { exit?: TerminalExit; error?: ShellsError } = {};
      let settle: { resolve: (e: TerminalExit) => void; reject: (e: Error) => void } | undefined;
      let ready = false;
      const exited = new Promise<TerminalExit>((res, rej) => (settle = { resolve: res, reject: rej }));
      exited.catch(() => undefined); // a caller that never awaits it must not crash the process
      const fail = (error: Error) => (ready ? settle!.reject(error) : reject(error));
      const onAbort = () => {
        socket.terminate();
        fail(options.signal!.reason as Error);
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      socket.on("open", () => socket.send(JSON.stringify({ type: "auth", token: credential.token })));
      socket.on("message", (data: Buffer, isBinary: boolean) => {
        if (isBinary) {
          options.onData?.(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
          return;
        }
        const message = JSON.parse(data.toString("utf8")) as Record<string, unknown>;
        if (message.type === "ready") {
          ready = true;
          resolve(new Terminal(socket, String(message.expires_at), exited));
        } else if (message.type === "exit") {
          ended.exit = { exitCode: Number(message.exit_code), signal: (message.signal as number | null) ?? null };
        } else if (message.type === "error") {
          ended.error = errorFromWire(0, message, undefined);
        }
      });
      socket.on("unexpected-response", (_request, response) => {
        let text = "";
        response.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
        response.on("end", () => fail(errorFromWire(response.statusCode ?? 0, safeJson(text), undefined)));
      });
      socket.on("error", (error) => fail(new Unavailable(`The terminal's connection failed: ${error.message}`, {}, { cause: error })));
      socket.on("close", (code) => {
        options.signal?.removeEventListener("abort", onAbort);
        if (ended.exit) settle!.resolve(ended.exit);
        else if (ended.error) {
          if (code >= 4000) ended.error.status = code - 4000; // the server closes with 4000 + the HTTP status
          fail(ended.error);
        }
        else fail(new Unavailable(`The terminal closed (code ${code}) before its process exited.`));
        ended = {};
      });
    });
  }

  /** Send keystrokes (text is sent as UTF-8). */
  write(data: string | Uint8Array): void {
    this.#socket.send(typeof data === "string" ? Buffer.from(data, "utf8") : data, { binary: true });
  }

  resize(cols: number, rows: number): void {
    this.#socket.send(JSON.stringify({ type: "resize", cols, rows }));
  }

  /** Leave the terminal; its process goes on until the credential's session ends. */
  close(): void {
    this.#socket.close(1000);
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
