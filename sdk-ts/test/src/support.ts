// What the end-to-end tests share: the server they were started against (tests/e2e/test_sdk_typescript.py
// passes SHELLS_BASE_URL and SHELLS_API_TOKEN) and a loopback stand-in for failures a real server cannot
// be made to show on demand (a connection dropped mid-answer, a 503).
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import { Shells, type CreateOptions, type Shell } from "@shells/sdk";

export const client = () => new Shells();

/** Create a shell for one test and delete it afterwards, whatever happens. */
export async function withShell<T>(options: CreateOptions, body: (shell: Shell) => Promise<T>): Promise<T> {
  await using shell = await client().create(options);
  return await body(shell);
}

export type Handler = (request: IncomingMessage, response: ServerResponse, body: string) => void;

/** A loopback HTTP server answering with `handler`, for the duration of `body`. */
export async function stub<T>(handler: Handler, body: (url: string) => Promise<T>): Promise<T> {
  const server = createServer((request, response) => {
    let text = "";
    request.on("data", (chunk: Buffer) => (text += chunk.toString()));
    request.on("end", () => handler(request, response, text));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    return await body(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}
