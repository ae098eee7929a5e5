// The live feed (GET /v1/events/stream) read with fetch, so the bearer header goes along:
// EventSource cannot send headers, and a token in a URL ends up in logs.

const RETRY_MS = 2000;

/** Parse a text/event-stream body into {id, event, data} messages. */
export async function* messages(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const msg = { id: null, event: "message", data: "" };
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "data") msg.data += (msg.data ? "\n" : "") + val;
        else if (field === "id" || field === "event") msg[field] = val;
      }
      if (msg.data) yield msg;
    }
  }
}

/**
 * Follow the feed until stop() is called: onReady(cursor) when (re)connected, onItem({event, shell})
 * for every event, onStatus("live" | "reconnecting" | "denied", error?) as the connection changes.
 * Reconnects after a drop, resuming after the last event it saw.
 */
export function follow(api, { onReady, onItem, onStatus }) {
  const abort = new AbortController();
  let cursor = null;
  let stopped = false;

  async function once() {
    const query = cursor === null ? "" : `?after=${cursor}`;
    const r = await fetch(`${api.base}/v1/events/stream${query}`, {
      headers: api.headers({ Accept: "text/event-stream" }),
      signal: abort.signal,
    });
    if (!r.ok) {
      const body = await r.json().catch(() => null);
      const err = new Error((body && body.error && body.error.message) || `HTTP ${r.status}`);
      err.status = r.status;
      throw err;
    }
    for await (const msg of messages(r.body)) {
      const data = JSON.parse(msg.data);
      if (msg.event === "ready") {
        cursor = data.cursor;
        onStatus("live");
        await onReady(cursor);
      } else if (msg.event === "shell") {
        cursor = Number(msg.id);
        onItem(data);
      } else if (msg.event === "error") {
        const err = new Error(data.error.message);
        err.status = 401;
        throw err;
      }
    }
  }

  (async () => {
    while (!stopped) {
      try {
        await once();
      } catch (e) {
        if (stopped) return;
        if (e.status === 401 || e.status === 403) {
          onStatus("denied", e);
          return;
        }
      }
      if (stopped) return;
      onStatus("reconnecting");
      await new Promise((ok) => setTimeout(ok, RETRY_MS));
    }
  })();

  return () => {
    stopped = true;
    abort.abort();
  };
}
