#!/usr/bin/env node
// Copies every ```ts block of docs/sdk-typescript.md and of the README into test/examples/ (one module
// each), so `npm run build` compiles them and test/src/docs.test.ts runs them as a user would.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "test/examples");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const [name, doc] of [["sdk-typescript", "../docs/sdk-typescript.md"], ["readme", "../README.md"]]) {
  const text = readFileSync(join(root, doc), "utf8");
  const blocks = [...text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
  blocks.forEach((code, i) => writeFileSync(join(out, `${name}-${i + 1}.ts`), `${code}export {};\n`));
  console.log(`${blocks.length} examples from ${doc}`);
}
