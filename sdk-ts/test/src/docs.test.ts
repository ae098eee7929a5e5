// Every TypeScript example of docs/sdk-typescript.md and the README, compiled by `npm run build`, runs
// to success as a user would run it (SHELLS_BASE_URL / SHELLS_API_TOKEN set, a fresh directory).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const dir = join(dirname(fileURLToPath(import.meta.url)), "..", "examples");
// "name: why": an example this host cannot run (the microvm one without the microvm class).
const [skipped, why] = (process.env.SHELLS_TS_SKIP_EXAMPLES ?? "").split(/: (.*)/s);
const examples = (await readdir(dir)).filter((f) => f.endsWith(".js"));

test("the docs have examples", () => assert.ok(examples.length >= 8, String(examples)));

for (const file of examples) {
  test(`example ${file}`, { skip: skipped && file === `${skipped}.js` ? why : false }, async () => {
    const cwd = await mkdtemp(join(tmpdir(), "shells-ts-example-"));
    try {
      const { stdout } = await run(process.execPath, [join(dir, file)], { cwd, timeout: 300_000 });
      process.stdout.write(`# ${file}: ${stdout.trim().split("\n").join(" | ")}\n`);
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });
}
