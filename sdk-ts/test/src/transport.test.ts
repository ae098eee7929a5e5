// The SDK's transport rules against a loopback stand-in, for what a real server cannot be made to do on
// demand: answer 503 or 429, drop the connection in the middle of an answer. The retry rule is the
// Python SDK's (src/shells/sdk/retry.py).
import assert from "node:assert/strict";
import { test } from "node:test";

import { RateLimited, RetryPolicy, Shells, Unavailable } from "@shells/sdk";

import { stub } from "./support.js";

const fast = new RetryPolicy({ backoffS: 0.01 });
const shellJson = JSON.stringify({ id: "sh_x", name: "x", state: "running", language: "bash", runtime: "container", network: { mode: "sealed" }, shape: "s", template: "t" });

test("a GET answered 503 is sent again with the same request id; a POST is not", async () => {
  const seen: string[] = [];
  await stub(
    (request, response) => {
      seen.push(`${request.method} ${request.headers["x-request-id"]}`);
      if (request.method === "GET" && seen.length < 3) response.writeHead(503).end();
      else if (request.method === "GET") response.writeHead(200, { "content-type": "application/json" }).end('{"shells": []}');
      else response.writeHead(503, { "content-type": "application/json" }).end('{"error": {"code": "unavailable", "message": "busy"}}');
    },
    async (baseUrl) => {
      const shells = new Shells({ baseUrl, token: "t", retry: fast });
      assert.deepEqual(await shells.list(), []);
      assert.equal(seen.length, 3);
      assert.equal(new Set(seen).size, 1, "every attempt carries the call's request id");
      seen.length = 0;
      await assert.rejects(shells.create({ language: "bash" }), Unavailable);
      assert.equal(seen.length, 1, "a create is never sent twice");
    },
  );
});

test("a POST refused by the rate limit (429) is sent again after the time it names", async () => {
  let calls = 0;
  let refuseAll = false;
  await stub(
    (_request, response) => {
      calls++;
      if (calls === 1 || refuseAll) {
        response.writeHead(429, { "content-type": "application/json" }).end('{"error": {"code": "rate_limited", "message": "slow down", "details": {"retry_after_s": 0.3}}}');
      } else response.writeHead(201, { "content-type": "application/json" }).end(shellJson);
    },
    async (baseUrl) => {
      const started = Date.now();
      const shell = await new Shells({ baseUrl, token: "t", retry: fast }).create();
      assert.equal(shell.id, "sh_x");
      assert.ok(Date.now() - started >= 290);
      refuseAll = true;
      await assert.rejects(new Shells({ baseUrl, token: "t", retry: new RetryPolicy({ maxRetries: 0 }) }).create(), RateLimited);
    },
  );
});

test("a connection that cannot be made is retried even for a POST, then fails as Unavailable", async () => {
  const baseUrl = await stub(() => undefined, async (url) => url); // now closed: nothing listens there
  const started = Date.now();
  const error = await new Shells({ baseUrl, token: "t", retry: fast }).create().catch((e: unknown) => e);
  assert.ok(error instanceof Unavailable, String(error));
  assert.match(error.message, /ECONNREFUSED/);
  assert.ok(Date.now() - started < 5000);
});

/** A stand-in that knows shell sh_x and answers its exec and file reads with `partial`. */
function cutShort(partial: (response: import("node:http").ServerResponse) => void): import("./support.js").Handler {
  return (request, response) => {
    if (request.method === "GET" && request.url === "/v1/shells/sh_x") {
      response.writeHead(200, { "content-type": "application/json" }).end(shellJson);
    } else partial(response);
  };
}

test("a stream whose connection drops before the command's end is an error, never a short result", async () => {
  for (const ending of ["destroy", "end"] as const) {
    const handler = cutShort((response) => {
      response.writeHead(200, { "content-type": "application/x-ndjson" });
      response.write('{"type": "started", "pid": 7}\n{"type": "stdout", "data": "partial"}\n');
      setTimeout(() => (ending === "destroy" ? response.destroy() : response.end()), 100);
    });
    await stub(handler, async (baseUrl) => {
      const shell = await new Shells({ baseUrl, token: "t", retry: fast }).get("sh_x");
      let got = "";
      await assert.rejects(shell.commands.run("x", { onStdout: (d) => (got += d) }), Unavailable);
      assert.equal(got, "partial");
    });
  }
});

test("a file cut short by the connection is an error, not a short file", async () => {
  const handler = cutShort((response) => {
    response.writeHead(200, { "content-length": "1000000", "content-type": "application/octet-stream" });
    response.write(Buffer.alloc(1000));
    setTimeout(() => response.destroy(), 100);
  });
  await stub(handler, async (baseUrl) => {
    const shell = await new Shells({ baseUrl, token: "t", retry: fast }).get("sh_x");
    await assert.rejects(shell.files.read("/workspace/f"), Unavailable);
    await assert.rejects(shell.files.download("/workspace/f", "/dev/null"), Unavailable);
  });
});

test("a call aborted while it waits to be retried rejects with the signal's reason at once", async () => {
  await stub(
    (_request, response) => response.writeHead(503).end(),
    async (baseUrl) => {
      const shells = new Shells({ baseUrl, token: "t", retry: new RetryPolicy({ backoffS: 10, maxBackoffS: 10 }) });
      const controller = new AbortController();
      const started = Date.now();
      setTimeout(() => controller.abort(new Error("enough")), 200);
      await assert.rejects(shells.list({ signal: controller.signal }), /enough/);
      assert.ok(Date.now() - started < 2000);
    },
  );
});
