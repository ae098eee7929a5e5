// `make console`: bundle the console into src/shells/console (committed, served by the server at /).
// esbuild's output depends only on the sources and the locked dependencies, so a rebuild from the
// lockfile reproduces the committed files byte for byte (tests/unit/test_console_assets.py checks
// the hashes recorded in MANIFEST).
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const out = "../src/shells/console";
mkdirSync(out, { recursive: true });
const common = { bundle: true, minify: true, legalComments: "eof", logLevel: "warning", charset: "utf8" };
await build({ ...common, entryPoints: ["src/main.js"], outfile: `${out}/console.js`, format: "esm", target: "es2022" });
await build({ ...common, entryPoints: ["src/console.css"], outfile: `${out}/console.css` });
copyFileSync("src/index.html", `${out}/index.html`);

// MANIFEST: the hash of every input (sources, build script, lockfile) and every output, so a test
// without npm can tell a stale build (sources changed, not rebuilt) or a hand-edited output.
const sha = (path) => createHash("sha256").update(readFileSync(path)).digest("hex");
const inputs = ["build.mjs", "package-lock.json", ...readdirSync("src").sort().map((f) => `src/${f}`)];
const outputs = readdirSync(out).filter((f) => f !== "MANIFEST").sort();
const lines = [
  ...inputs.map((f) => `${sha(f)}  console/${f}`),
  ...outputs.map((f) => `${sha(join(out, f))}  src/shells/console/${f}`),
];
writeFileSync(`${out}/MANIFEST`, lines.join("\n") + "\n");
console.log(`built ${outputs.join(", ")}`);
