// The tools of the Python MCP server (src/shells/mcp/tools.py), served through the TypeScript SDK:
// their names, schemas and annotations come from tools.json (written by scripts/mcp_tools_json.py from
// the Python table), what each does is here, in the REST API's wire forms.
import { InvalidRequest, type Shells } from "@shells/sdk";
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";

import { createRequire } from "node:module";

import { cut, mask, ok } from "./shaping.js";

interface Table {
  instructions: string;
  defaults: { output_chars: number; read_bytes: number };
  consequences: Record<string, string>;
  tools: Tool[];
}
// Read at run time (not imported: JSON modules are still experimental in Node 20).
const table = createRequire(import.meta.url)("./tools.json") as Table;

type Json = Record<string, any>;
type Run = (shells: Shells, args: Json) => Promise<CallToolResult>;

export const INSTRUCTIONS: string = table.instructions;
export const TOOLS: Tool[] = table.tools;
const DEFAULT_OUTPUT_CHARS = table.defaults.output_chars;
const DEFAULT_READ_BYTES = table.defaults.read_bytes;
const CONSEQUENCES = table.consequences;

const shell = (id: string) => `/v1/shells/${encodeURIComponent(id)}`;

function line(sh: Json): string {
  const reason = sh.state_reason ? ` (${sh.state_reason})` : "";
  return (
    `${sh.id}  ${sh.name}  ${sh.state}${reason}  ${sh.language}/${sh.runtime}` +
    `  network=${sh.network?.mode ?? "?"}  shape=${sh.shape ?? "?"}`
  );
}

function commandResult(answer: Json, limit: number): CallToolResult {
  const result: Json = { ...answer };
  [result.stdout, result.stdout_cut] = cut(answer.stdout ?? "", limit, "stdout");
  [result.stderr, result.stderr_cut] = cut(answer.stderr ?? "", limit, "stderr");
  let status = `exit code ${result.exit_code}`;
  if (result.timed_out) status += " (timed out and killed)";
  else if (result.signal) status += ` (killed by signal ${result.signal})`;
  const parts = [`${status}, ${Math.round(result.duration_ms ?? 0)} ms`];
  for (const stream of ["stdout", "stderr"]) if (result[stream]) parts.push(`--- ${stream} ---\n${result[stream]}`);
  if (result.truncated) parts.push("(the server stopped collecting output at its cap)");
  return ok(parts.join("\n"), result);
}

const limit = (args: Json): number => args.max_output_chars ?? DEFAULT_OUTPUT_CHARS;
const pick = (args: Json, keys: string[]): Json => Object.fromEntries(keys.filter((k) => k in args).map((k) => [k, args[k]]));

const RUNS: Record<string, Run> = {
  async shells_runtimes(shells) {
    const rows = (await shells.request<Json>("GET", "/v1/runtimes")).runtimes as Json[];
    const text = rows.map(
      (r) =>
        `${r.language.padEnd(7)} ${r.runtime.padEnd(10)} ` +
        (r.available ? `available ${r.version ?? ""}`.trimEnd() : "unavailable") +
        (r.notes ? ` (${r.notes})` : ""),
    );
    return ok(text.join("\n"), { runtimes: rows });
  },

  async shells_list(shells, args) {
    const found = (await shells.request<Json>("GET", "/v1/shells", { query: args })).shells as Json[];
    return ok(found.length ? found.map(line).join("\n") : "No shells.", { shells: found });
  },

  async shells_create(shells, args) {
    const created = await shells.request<Json>("POST", "/v1/shells", { body: args });
    return ok(`Created and started ${line(created)}`, { shell: created });
  },

  async shells_delete(shells, args) {
    await shells.request("DELETE", shell(args.shell_id));
    const text = `Deleted shell ${args.shell_id} (destructive: its processes and files are gone; its snapshots stay).`;
    return ok(text, { deleted: args.shell_id });
  },

  async shells_action(shells, args) {
    const { shell_id, action, ...params } = args;
    const answer = await shells.request<Json>("POST", `${shell(shell_id)}/actions/${encodeURIComponent(action)}`, { body: params });
    const { shell: sh, result } = answer as { shell: Json; result: Json };
    const destructive = action in CONSEQUENCES;
    const lines = [`${action} on ${sh.id}: done; the shell is ${sh.state}.`];
    if (destructive) lines.push(`DESTRUCTIVE: ${CONSEQUENCES[action]}.`);
    if ("snapshot" in result) lines.push(`Snapshot ${result.snapshot.id}: shells_create snapshot= makes a shell from it.`);
    if ("shells" in result) lines.push(`Copies: ${(result.shells as Json[]).map((c) => c.id).join(", ")}`);
    if ("logs" in result) lines.push(cut(String(result.logs), DEFAULT_OUTPUT_CHARS, "the log")[0]);
    return ok(lines.join("\n"), { action, destructive, shell: sh, result });
  },

  async shells_term(shells, args) {
    const cred = await shells.request<Json>("POST", `${shell(args.shell_id)}/term`, { body: pick(args, ["ttl_s"]) });
    const text =
      `Terminal credential ${cred.id} for ${args.shell_id}, valid until ${cred.expires_at}: ` +
      `open a WebSocket to ${cred.url} and send {"type": "auth", "token": <token>} first. ` +
      `Token ${mask(cred.token)} (masked here; the structured result holds it whole).`;
    return ok(text, cred);
  },

  async shells_exec(shells, args) {
    if (("command" in args) === ("argv" in args)) {
      throw new InvalidRequest("Give exactly one of 'command' (a shell line) or 'argv' (a list).");
    }
    const body: Json = "command" in args ? { command: args.command } : { cmd: args.argv };
    Object.assign(body, pick(args, ["cwd", "env", "stdin", "timeout_s"]));
    const answer = await shells.request<Json>("POST", `${shell(args.shell_id)}/exec`, { query: { wait: "true" }, body, unbounded: true });
    return commandResult(answer, limit(args));
  },

  async shells_run_code(shells, args) {
    const body = pick(args, ["code", "language", "timeout_s"]);
    const answer = await shells.request<Json>("POST", `${shell(args.shell_id)}/run`, { query: { wait: "true" }, body, unbounded: true });
    return commandResult(answer, limit(args));
  },

  async shells_files_read(shells, args) {
    const most: number = args.max_bytes ?? DEFAULT_READ_BYTES;
    const data = await head(shells, args.shell_id, args.path, most + 1);
    const truncated = data.byteLength > most;
    const kept = data.subarray(0, most);
    const encoding = args.encoding ?? "text";
    const content = encoding === "base64" ? kept.toString("base64") : new TextDecoder().decode(kept);
    const text = content + (truncated ? `\n…[cut after ${most} bytes; ask with a larger max_bytes]` : "");
    return ok(text, { path: args.path, content, encoding, size: kept.byteLength, truncated });
  },

  async shells_files_write(shells, args) {
    const content = String(args.content);
    let data: Buffer;
    if ((args.encoding ?? "text") === "base64") {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(content) || content.length % 4 !== 0) {
        throw new InvalidRequest("'content' is not valid base64.", { field: "content" });
      }
      data = Buffer.from(content, "base64");
    } else {
      data = Buffer.from(content, "utf8");
    }
    const query = { path: args.path, mode: args.mode ?? "644" };
    const answer = await shells.request<Json>("PUT", `${shell(args.shell_id)}/files`, { query, content: data });
    return ok(`Wrote ${answer.size} bytes to ${answer.path}.`, answer);
  },

  async shells_files_list(shells, args) {
    const answer = await shells.request<Json>("GET", `${shell(args.shell_id)}/files/list`, {
      query: { path: args.path ?? "/workspace" },
    });
    const lines = (answer.entries as Json[]).map((e) => `${e.kind.padEnd(7)} ${String(e.size).padStart(10)}  ${e.name}`);
    return ok(lines.join("\n") || `${answer.path} is empty.`, answer);
  },
};

/** The first `most` bytes of a file; the rest is never read. */
async function head(shells: Shells, shellId: string, path: string, most: number): Promise<Buffer> {
  const response = await shells.requestRaw("GET", `${shell(shellId)}/files`, { query: { path } });
  const chunks: Buffer[] = [];
  let size = 0;
  const reader = response.body!.getReader();
  try {
    while (size < most) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(Buffer.from(value));
      size += value.byteLength;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, most);
}

export function runner(name: string): Run | undefined {
  return RUNS[name];
}
