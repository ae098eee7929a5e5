// What an agent reads back, as the Python MCP server shapes it (src/shells/mcp/shaping.py): long output
// cut in the middle with a marker saying what was cut, terminal credentials masked in the text (whole
// in the structured result), and errors as tool errors carrying the REST API's error code.
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { ShellsError } from "@shells/sdk";

/** Characters of a secret shown at its end. */
const MASK_KEEP = 4;

/** `text` if it is at most `limit` characters, else its head and tail around a marker naming how much
 * of `what` was left out; and that number (0 when nothing was cut). Characters are code points. */
export function cut(text: string, limit: number, what: string): [string, number] {
  const chars = [...text];
  if (chars.length <= limit) return [text, 0];
  const removed = chars.length - limit;
  const head = limit - Math.floor(limit / 2);
  const marker =
    `\n…[${removed} characters of ${what} cut here; redirect the output to a file and read it ` +
    "with shells_files_read]…\n";
  return [chars.slice(0, head).join("") + marker + chars.slice(chars.length - Math.floor(limit / 2)).join(""), removed];
}

/** `term_…a1b2`: enough to tell credentials apart, not enough to use one. */
export function mask(secret: string): string {
  const prefix = secret.includes("_") ? `${secret.split("_", 1)[0]}_` : "";
  return `${prefix}…${[...secret].slice(-MASK_KEEP).join("")}`;
}

export function ok(text: string, structured: Record<string, unknown>): CallToolResult {
  return { content: [{ type: "text", text }], structuredContent: structured };
}

/** A tool error an agent can act on: `<code>: <message>`, with the REST error body as the structured result. */
export function failed(error: ShellsError): CallToolResult {
  return {
    content: [{ type: "text", text: `${error.code}: ${error.message}` }],
    structuredContent: { error: { code: error.code, message: error.message, details: error.details } },
    isError: true,
  };
}
