#!/usr/bin/env node
// `npx @shells/mcp`: the Shells MCP tools over standard input and output, for agents that start their
// tools as processes. A client of a Shells server (SHELLS_BASE_URL, SHELLS_API_TOKEN) through the
// TypeScript SDK with door `mcp`, so the server checks the `shells.agent.invoke` entitlement and every
// permission, exactly as for the Python `shells mcp`.
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { CallToolRequestSchema, ListToolsRequestSchema, type CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { DOOR_HEADER, InvalidRequest, RuntimeFailure, Shells, ShellsError, VERSION } from "@shells/sdk";
import { Ajv, type ValidateFunction } from "ajv";

import { failed } from "./shaping.js";
import { INSTRUCTIONS, runner, TOOLS } from "./tools.js";

const ajv = new Ajv({ strict: false, allErrors: false });
const validators = new Map<string, ValidateFunction>(TOOLS.map((t) => [t.name, ajv.compile(t.inputSchema)]));

/** Refuse arguments the tool's input schema does not allow, naming the first problem. */
function checkArguments(name: string, args: Record<string, unknown>): void {
  const validate = validators.get(name)!;
  if (validate(args)) return;
  const error = validate.errors![0]!;
  const where = error.instancePath.replace(/^\//, "") || "arguments";
  const extra = error.keyword === "additionalProperties" ? ` ('${String(error.params.additionalProperty)}')` : "";
  throw new InvalidRequest(`Invalid arguments for ${name}: ${where}: ${error.message}${extra}.`, { field: where });
}

async function callTool(shells: Shells, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  const run = runner(name);
  if (!run) {
    const known = TOOLS.map((t) => t.name).join(", ");
    return failed(new InvalidRequest(`There is no tool '${name}'; the tools are: ${known}.`));
  }
  try {
    checkArguments(name, args);
    return await run(shells, args);
  } catch (error) {
    if (error instanceof ShellsError) return failed(error);
    console.error(`tool ${name} failed:`, error);
    return failed(new RuntimeFailure("The tool failed inside the MCP server; its standard error has the cause."));
  }
}

async function main(): Promise<void> {
  const shells = new Shells({ headers: { [DOOR_HEADER]: "mcp" } });
  const server = new Server(
    { name: "shells", title: "Shells", version: VERSION },
    { capabilities: { tools: {} }, instructions: INSTRUCTIONS },
  );
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: TOOLS }));
  server.setRequestHandler(CallToolRequestSchema, (request) =>
    callTool(shells, request.params.name, { ...(request.params.arguments ?? {}) }),
  );
  await server.connect(new StdioServerTransport());
}

main().catch((error: unknown) => {
  console.error(error instanceof ShellsError ? `${error.code}: ${error.message}` : error);
  process.exit(1);
});
