// What @shells/sdk adds over a raw fetch of the same request, in one Node process against one real
// server and one running shell (benchmarks/bench_sdk_ts.py starts them and passes SHELLS_BASE_URL,
// SHELLS_API_TOKEN, BENCH_SHELL, BENCH_RUNS and SHELLS_SDK_DIST, the built package's entry point).
// Each pair alternates which side goes first; both decode the JSON answer and share Node's keep-alive
// connection pool. Prints medians, their difference and ratio, and the median of paired differences.
import { pathToFileURL } from "node:url";

const { Shells } = await import(pathToFileURL(process.env.SHELLS_SDK_DIST).href);
const base = process.env.SHELLS_BASE_URL;
const token = process.env.SHELLS_API_TOKEN;
const sid = process.env.BENCH_SHELL;
const runs = Number(process.env.BENCH_RUNS ?? 300);
const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };

const shells = new Shells();
const shell = await shells.get(sid);
const pairs = {
  "GET shell": [
    () => shells.get(sid),
    () => fetch(`${base}/v1/shells/${sid}`, { headers }).then((r) => r.json()),
  ],
  "exec true (wait)": [
    () => shell.commands.run(["true"]),
    () =>
      fetch(`${base}/v1/shells/${sid}/exec?wait=true`, {
        method: "POST",
        headers,
        body: JSON.stringify({ cmd: ["true"] }),
      }).then((r) => r.json()),
  ],
  "exec true (streamed)": [
    () => shell.commands.run(["true"], { onStdout: () => undefined }),
    () =>
      fetch(`${base}/v1/shells/${sid}/exec`, { method: "POST", headers, body: JSON.stringify({ cmd: ["true"] }) }).then(
        (r) => r.text(),
      ),
  ],
};

const ms = async (fn) => {
  const t = performance.now();
  await fn();
  return performance.now() - t;
};
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

for (const [sdkCall, rawCall] of Object.values(pairs)) for (let i = 0; i < 20; i++) await sdkCall(), await rawCall();
const rows = [];
for (const [name, [sdkCall, rawCall]] of Object.entries(pairs)) {
  const sdk = [];
  const raw = [];
  for (let i = 0; i < runs; i++) {
    if (i % 2) raw.push(await ms(rawCall)), sdk.push(await ms(sdkCall));
    else sdk.push(await ms(sdkCall)), raw.push(await ms(rawCall));
  }
  const [s, r] = [median(sdk), median(raw)];
  const paired = median(sdk.map((x, i) => x - raw[i]));
  const signed = (x) => `${x >= 0 ? "+" : ""}${x.toFixed(3)}`.padStart(9);
  rows.push(
    `${name.padEnd(24)} ${r.toFixed(3).padStart(8)} ${s.toFixed(3).padStart(8)} ${signed(s - r)} ${signed(paired)} ${(s / r).toFixed(3).padStart(7)}`,
  );
}
console.log(`node ${process.version}; runs: ${runs} per row, alternating SDK and raw fetch`);
console.log(`${"measurement".padEnd(24)} ${"raw ms".padStart(8)} ${"sdk ms".padStart(8)} ${"delta ms".padStart(9)} ${"paired".padStart(9)} ${"ratio".padStart(7)}`);
console.log(rows.join("\n"));
