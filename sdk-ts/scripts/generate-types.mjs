#!/usr/bin/env node
// Turns the server's OpenAPI document (sdk-ts/openapi.json, a copy of GET /openapi.json) into the
// TypeScript types of packages/sdk/src/generated/openapi.ts: one named type per component schema and,
// per operation ("POST /v1/shells"), its query, request body, success answer and the statuses the
// document says it answers. `--check` writes nothing and fails when the checked-in file differs, so a
// change of the document that was not regenerated is caught (tests/e2e/test_sdk_typescript.py runs it).
//
// Usage: node scripts/generate-types.mjs [--check] [--document path/to/openapi.json]
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const check = args.includes("--check");
const docArg = args.indexOf("--document");
const documentPath = docArg >= 0 ? args[docArg + 1] : join(root, "openapi.json");
const target = join(root, "packages/sdk/src/generated/openapi.ts");

const METHODS = ["get", "put", "post", "delete", "patch"];
const SKIPPED_HEADERS = new Set(["authorization"]);

/** A JSON Schema as a TypeScript type expression; `$ref`s name the `Schemas` interface. */
function tsType(schema, indent = "") {
  if (schema === undefined || schema === true || (schema && Object.keys(schema).length === 0)) return "unknown";
  if (schema.$ref) return `Schemas[${JSON.stringify(schema.$ref.split("/").pop())}]`;
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  for (const key of ["anyOf", "oneOf"]) {
    if (schema[key]) return unique(schema[key].map((s) => tsType(s, indent))).join(" | ");
  }
  if (schema.allOf) return schema.allOf.map((s) => wrap(tsType(s, indent))).join(" & ");
  if (Array.isArray(schema.type)) return unique(schema.type.map((t) => tsType({ ...schema, type: t }, indent))).join(" | ");
  switch (schema.type) {
    case "string":
      return "string";
    case "integer":
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "null":
      return "null";
    case "array":
      return `${wrap(tsType(schema.items, indent))}[]`;
    case "object":
      return objectType(schema, indent);
    case undefined:
      return schema.properties || schema.additionalProperties !== undefined ? objectType(schema, indent) : "unknown";
    default:
      return "unknown";
  }
}

function objectType(schema, indent) {
  const props = schema.properties ?? {};
  const required = new Set(schema.required ?? []);
  const inner = indent + "  ";
  const lines = Object.entries(props).map(([name, sub]) => {
    const doc = sub.description ? `${inner}/** ${sub.description.replaceAll("*/", "* /")} */\n` : "";
    return `${doc}${inner}${JSON.stringify(name)}${required.has(name) ? "" : "?"}: ${tsType(sub, inner)};`;
  });
  const extra = schema.additionalProperties;
  if (extra !== undefined && extra !== false) {
    lines.push(`${inner}[key: string]: ${extra === true ? "unknown" : `${tsType(extra, inner)} | undefined`};`);
  } else if (lines.length === 0 && extra === undefined) {
    return "JsonObject";
  }
  return lines.length ? `{\n${lines.join("\n")}\n${indent}}` : "Record<string, never>";
}

const wrap = (t) => (/^[\w"[\]<>.]+$/.test(t) ? t : `(${t})`);
const unique = (items) => [...new Set(items)];

function operation(method, path, op, indent) {
  const query = (op.parameters ?? []).filter((p) => p.in === "query" && !SKIPPED_HEADERS.has(p.name));
  const queryType = query.length
    ? objectType(
        {
          properties: Object.fromEntries(query.map((p) => [p.name, { ...p.schema, description: p.description }])),
          required: query.filter((p) => p.required).map((p) => p.name),
        },
        indent + "  ",
      )
    : "Record<string, never>";
  const bodySchema = op.requestBody?.content?.["application/json"]?.schema;
  const statuses = Object.keys(op.responses ?? {}).sort();
  const success = statuses.find((s) => s.startsWith("2"));
  const answer = success ? op.responses[success].content?.["application/json"]?.schema : undefined;
  return [
    `${indent}/** ${op.summary ?? op.operationId}. */`,
    `${indent}${JSON.stringify(`${method.toUpperCase()} ${path}`)}: {`,
    `${indent}  query: ${queryType};`,
    `${indent}  body: ${bodySchema ? tsType(bodySchema, indent + "  ") : "JsonObject"};`,
    `${indent}  response: ${answer ? tsType(answer, indent + "  ") : "unknown"};`,
    `${indent}  statuses: ${statuses.join(" | ") || "never"};`,
    `${indent}};`,
  ].join("\n");
}

function render(doc) {
  const schemas = Object.entries(doc.components?.schemas ?? {}).map(
    ([name, schema]) =>
      `${schema.description ? `  /** ${schema.description.split("\n")[0].replaceAll("*/", "* /")} */\n` : ""}` +
      `  ${JSON.stringify(name)}: ${tsType(schema, "  ")};`,
  );
  const operations = [];
  for (const [path, item] of Object.entries(doc.paths ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    for (const method of METHODS) {
      if (item[method]) operations.push(operation(method, path, item[method], "  "));
    }
  }
  return `// Generated by sdk-ts/scripts/generate-types.mjs from the server's /openapi.json (${doc.info?.title} ${doc.info?.version}).
// Do not edit: run \`npm run generate\` in sdk-ts after the document changes.
/* eslint-disable */

export type JsonObject = { [key: string]: unknown };

/** The document's component schemas, by name. */
export interface Schemas {
${schemas.join("\n")}
}

/** Every operation, by "METHOD /path": its query, request body, success answer and documented statuses. */
export interface Operations {
${operations.join("\n")}
}

/** The JSON body an operation takes. */
export type RequestBody<K extends keyof Operations> = Operations[K]["body"];
/** The query an operation takes. */
export type Query<K extends keyof Operations> = Operations[K]["query"];
`;
}

const text = render(JSON.parse(readFileSync(documentPath, "utf8")));
if (check) {
  let current = "";
  try {
    current = readFileSync(target, "utf8");
  } catch {}
  if (current !== text) {
    console.error(`${target} is not what ${documentPath} generates: run \`npm run generate\` in sdk-ts.`);
    process.exit(1);
  }
} else {
  writeFileSync(target, text);
}
