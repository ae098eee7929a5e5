// @shells/sdk end to end against a real server: streaming exec, files of several MiB, every action, a
// terminal session, typed errors, cancelled calls, `await using`.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFile, writeFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import {
  ActionNotSupported,
  CredentialRevoked,
  FileNotFound,
  InvalidRequest,
  NotFound,
  Shell,
  ShellNotFound,
  Shells,
  ShellsError,
  SnapshotNotFound,
  Terminal,
  Unauthenticated,
  type CommandEvent,
  type Language,
} from "@shells/sdk";

import { client, withShell } from "./support.js";

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

test("a command's output streams to the callbacks before it exits, and the result holds all of it", async () => {
  await withShell({ language: "bash" }, async (shell) => {
    const seen: { at: number; data: string }[] = [];
    const started = Date.now();
    const result = await shell.commands.run("for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.4; done; exit 3", {
      onStdout: (data) => seen.push({ at: Date.now() - started, data }),
      onStderr: () => undefined,
    });
    assert.equal(result.exitCode, 3);
    assert.equal(result.stdout, "out1\nout2\nout3\n");
    assert.equal(result.stderr, "err1\nerr2\nerr3\n");
    assert.equal(seen.map((s) => s.data).join(""), result.stdout);
    const total = Date.now() - started;
    assert.ok(seen[0]!.at < total - 500, `the first line came at ${seen[0]!.at} ms of ${total} ms: not streamed`);

    const events: CommandEvent[] = [];
    for await (const event of shell.commands.stream(["sh", "-c", "echo one; echo two"])) events.push(event);
    assert.equal(events[0]!.type, "started");
    assert.deepEqual(events.at(-1), { type: "exit", exitCode: 0, signal: null, timedOut: false, truncated: false, durationMs: (events.at(-1) as { durationMs: number }).durationMs });

    const waited = await shell.commands.run("printf %s \"$X\" | tr a-z A-Z", { env: { X: "quiet" }, stdin: "ignored" });
    assert.equal(waited.stdout, "QUIET");
    const code = await shell.runCode("echo $((6 * 7))");
    assert.equal(code.stdout, "42\n");
  });
});

test("files of several MiB go in and out streamed, byte for byte", async () => {
  const dir = await mkdtemp(join(tmpdir(), "shells-sdk-ts-"));
  try {
    await withShell({ language: "bash" }, async (shell) => {
      const data = randomBytes(6 * 1024 * 1024 + 123);
      const local = join(dir, "in.bin");
      await writeFile(local, data);
      await shell.files.mkdir("/workspace/big/deeper");
      assert.equal(await shell.files.upload(local, "/workspace/big/deeper/in.bin"), data.byteLength);
      const inside = await shell.commands.run("sha256sum /workspace/big/deeper/in.bin | cut -d' ' -f1");
      assert.equal(inside.stdout.trim(), sha256(data));

      assert.equal(await shell.files.download("big/deeper/in.bin", join(dir, "out.bin")), data.byteLength);
      assert.equal(sha256(await readFile(join(dir, "out.bin"))), sha256(data));
      assert.equal(sha256(await shell.files.read("/workspace/big/deeper/in.bin")), sha256(data));

      assert.equal(await shell.files.write("/workspace/note.txt", "héllo\n", { mode: 0o600 }), 7);
      assert.equal(await shell.files.readText("note.txt"), "héllo\n");
      const stat = await shell.files.stat("/workspace/note.txt");
      assert.deepEqual([stat.kind, stat.size, stat.mode & 0o777], ["file", 7, 0o600]);
      const names = (await shell.files.list("/workspace")).map((e) => e.name);
      assert.deepEqual(names, ["big", "note.txt"]);
      await assert.rejects(shell.files.remove("/workspace/big"), InvalidRequest);
      await shell.files.remove("/workspace/big", { recursive: true });
      assert.equal(await shell.files.exists("/workspace/big"), false);
      await assert.rejects(shell.files.read("/workspace/nope"), FileNotFound);
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("every action a container can do, on the handle and in the flat form", async () => {
  const shells = client();
  await withShell({ language: "bash" }, async (shell) => {
    await shell.files.write("/workspace/kept", "1");
    await shell.commands.run("echo marker > /etc/marker");
    await shell.actions.restart();
    assert.equal(shell.info.state, "running");
    const snap = await shell.actions.snapshot("before-wipe");
    assert.equal(snap.shellId, shell.id);
    assert.ok((await shells.snapshots.list({ shellId: shell.id })).some((s) => s.id === snap.id));
    const extra = await shell.actions.snapshot("deleted");
    await shells.snapshots.delete(extra.id);
    assert.ok(!(await shells.snapshots.list({ shellId: shell.id })).some((s) => s.id === extra.id));
    await assert.rejects(shells.snapshots.delete(extra.id), SnapshotNotFound);
    assert.equal(typeof (await shell.actions.logs(4096)), "string");
    await shell.actions.reinstallOs();
    assert.equal((await shell.commands.run("cat /etc/marker; cat /workspace/kept")).stdout, "1");
    await shell.actions.stop();
    assert.equal(shell.info.state, "stopped");
    await shell.actions.start();
    assert.equal(shell.info.state, "running");
    await shell.actions.wipeState();
    assert.equal(await shell.files.exists("/workspace/kept"), false);
    await assert.rejects(shell.actions.pause(), ActionNotSupported);

    const flat = await shells.action(shell.id, "snapshot", { name: "flat" });
    assert.equal(flat.shell.id, shell.id);
    assert.match(String((flat.result.snapshot as { id: string }).id), /^snap_/);
    await using copy = await shells.create({ snapshot: snap.id });
    assert.equal(await copy.files.readText("/workspace/kept"), "1");
  });
});

test("a terminal session: credential, live output, keystrokes, exit", async () => {
  await withShell({ language: "bash" }, async (shell) => {
    const cred = await client().term(shell.id, { ttlS: 120 });
    assert.match(cred.token, /^term_/);
    assert.match(cred.url, /^ws:\/\//);
    let output = "";
    const term = await shell.terminal({
      cols: 100,
      rows: 30,
      onData: (data) => (output += Buffer.from(data).toString("utf8")),
    });
    term.resize(120, 40);
    term.write("stty size; echo hi-$((6*7))\n");
    for (let i = 0; i < 100 && !output.includes("hi-42"); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(output, /40 120/);
    assert.match(output, /hi-42/);
    term.write("exit 5\n");
    assert.deepEqual(await term.exited, { exitCode: 5, signal: null });

    const revoked = await shell.terminals.create();
    const listed = await shell.terminals.list();
    assert.ok(listed.some((c) => c.id === revoked.id && !c.token.includes(revoked.token)));
    await shell.terminals.revoke(revoked.id);
    const refused = await Terminal.open(revoked).catch((e: unknown) => e);
    assert.ok(refused instanceof CredentialRevoked, String(refused));
    assert.equal(refused.status, 401);
  });
});

test("errors arrive as the class of their code, with the request id", async () => {
  const shells = client();
  const missing = await shells.get("sh_doesnotexist").catch((e: unknown) => e);
  assert.ok(missing instanceof ShellNotFound && missing instanceof NotFound && missing instanceof ShellsError);
  assert.equal(missing.code, "shell_not_found");
  assert.equal(missing.status, 404);
  assert.match(missing.requestId ?? "", /^[0-9a-f]{32}$/);
  assert.match(missing.message, /sh_doesnotexist/);

  // What TypeScript refuses to compile (test/src/types.check.ts), a JavaScript caller can still send.
  const bad = await shells.create({ language: "cobol" as unknown as Language }).catch((e: unknown) => e);
  assert.ok(bad instanceof InvalidRequest, String(bad));
  assert.match(bad.message, /cobol/);

  const stranger = new Shells({ token: "shl_not_a_token" });
  await assert.rejects(stranger.list(), Unauthenticated);
  const saved = process.env.SHELLS_API_TOKEN;
  delete process.env.SHELLS_API_TOKEN;
  try {
    assert.throws(() => new Shells(), Unauthenticated);
  } finally {
    process.env.SHELLS_API_TOKEN = saved;
  }
});

test("a cancelled call rejects with the signal's reason at once, and the shell goes on", async () => {
  await withShell({ language: "bash" }, async (shell) => {
    const controller = new AbortController();
    const started = Date.now();
    const running = shell.commands.run("sleep 30", { signal: controller.signal, onStdout: () => undefined });
    setTimeout(() => controller.abort(), 500);
    await assert.rejects(running, { name: "AbortError" });
    assert.ok(Date.now() - started < 5000);
    const waited = shell.commands.run("sleep 30", { signal: AbortSignal.timeout(300) });
    await assert.rejects(waited, { name: "TimeoutError" });
    await assert.rejects(client().list({ signal: AbortSignal.abort() }), { name: "AbortError" });
    assert.equal((await shell.commands.run("echo still")).stdout, "still\n");
  });
});

test("`await using` deletes the shell when the block ends, even when it throws", async () => {
  const shells = client();
  let id = "";
  await assert.rejects(
    (async () => {
      await using shell = await shells.create({ language: "python" });
      id = shell.id;
      assert.ok(shell instanceof Shell);
      throw new Error("boom");
    })(),
    /boom/,
  );
  await assert.rejects(shells.get(id), ShellNotFound);
});

test("ports, network, templates, snapshots and usage", async () => {
  const shells = client();
  await withShell({ language: "python", network: "localhost" }, async (shell) => {
    const port = await shell.ports.expose(8000);
    assert.equal(port.port, 8000);
    assert.deepEqual((await shell.ports.list()).map((p) => p.port), [8000]);
    await shell.ports.close(8000);
    const events = await shell.events();
    const ports = events.filter((e) => e.action.endsWith("_port")).map((e) => `${e.action}/${e.door}`);
    assert.deepEqual(ports, ["expose_port/sdk", "close_port/sdk"]);
    assert.equal((await shell.network()).policy.mode, "localhost");
    const net = await shells.networks.create(`ts-${Date.now()}`);
    try {
      assert.deepEqual((await shells.networks.attach(net.name, shell.id)).shells.map((s) => s.id), [shell.id]);
      assert.deepEqual((await shell.network()).networks, [net.name]);
      await shells.networks.detach(net.name, shell.id);
    } finally {
      await shells.networks.delete(net.name);
    }
    assert.equal((await shell.setNetwork("sealed")).policy.mode, "sealed");
  });
  assert.equal((await shells.templates.presets()).python, "python:1");
  assert.ok((await shells.templates.list()).some((t) => t.name === "python:1"));
  assert.ok(Array.isArray(await shells.snapshots.list()));
  const usage = await shells.usage({ groupBy: "class" });
  assert.equal(usage.groupBy, "class");
  assert.match(usage.total.costUsd, /^\d+(\.\d+)?$/);
  assert.ok((await shells.list()).every((s) => s instanceof Shell));
});
