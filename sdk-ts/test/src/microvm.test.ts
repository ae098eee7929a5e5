// pause, resume and fork through @shells/sdk on a real microvm (QEMU); tests/e2e/test_sdk_typescript.py
// runs this file only where the server offers the microvm class.
import assert from "node:assert/strict";
import { test } from "node:test";

import { client } from "./support.js";

test("a microvm pauses with its memory, resumes where it stopped, and forks into an independent copy", async () => {
  const shells = client();
  await using shell = await shells.create({ language: "python", runtime: "microvm" });
  assert.equal(shell.info.runtime, "microvm");
  await shell.commands.run("python3 -c \"import time; open('/tmp/started','w').write(str(time.time()))\"");
  // A value that lives only in memory: a shell variable in a process kept alive in the background.
  await shell.commands.run("sh -c 'x=alive; while true; do echo $x > /tmp/beat; sleep 0.2; done' >/dev/null 2>&1 &");
  await shell.actions.pause();
  assert.equal(shell.info.state, "paused");
  await shell.actions.resume();
  assert.equal(shell.info.state, "running");
  assert.equal((await shell.commands.run("sleep 0.5; cat /tmp/beat")).stdout, "alive\n");

  await shell.files.write("/workspace/origin", "parent");
  const [child] = await shell.actions.fork(1);
  assert.ok(child);
  await using copy = child;
  assert.notEqual(copy.id, shell.id);
  assert.equal(copy.info.state, "running");
  assert.equal(await copy.files.readText("/workspace/origin"), "parent");
  assert.equal((await copy.commands.run("sleep 0.5; cat /tmp/beat")).stdout, "alive\n"); // memory came along
  await copy.files.write("/workspace/origin", "child");
  assert.equal(await shell.files.readText("/workspace/origin"), "parent");
});
