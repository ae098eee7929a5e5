// One connection to a server with the SDK's rules: the token, a request id per call (the same on
// every retry), the retry rule, timeouts, the caller's AbortSignal, and every failure turned into the
// error class of its code.
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

import { ShellsError, Timeout, Unauthenticated, Unavailable, errorFromWire } from "./errors.js";
import { NOT_SENT_CODES, RATE_LIMITED, RetryPolicy, retryAfter, type Failure } from "./retry.js";

export const VERSION = "0.1.0";
export const DEFAULT_BASE_URL = "http://127.0.0.1:8080";
export const DEFAULT_TIMEOUT_MS = 120_000;
export const REQUEST_ID_HEADER = "X-Request-Id";
export const DOOR_HEADER = "X-Shells-Door";

export type Json = { [key: string]: unknown };
export type QueryValue = string | number | boolean | null | undefined;
/** A request body sent as it is: bytes, or a function that opens a fresh stream for every attempt. */
export type Content = Uint8Array | string | (() => ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>);

/** What every call accepts besides its own arguments. */
export interface CallOptions {
  /** Cancels the call: it rejects with the signal's reason (an `AbortError` unless given). */
  signal?: AbortSignal;
}

export interface ClientOptions {
  /** The server, such as `https://shells.example.com`; `SHELLS_BASE_URL` unless given. */
  baseUrl?: string;
  /** An API token (`shl_…`); `SHELLS_API_TOKEN` unless given. */
  token?: string;
  /** Bounds every call except commands, code runs and builds, which the server bounds (120 s). */
  timeoutMs?: number;
  retry?: RetryPolicy;
  /** Sent with every request; `X-Shells-Door` names the door the audit trail records (`sdk`). */
  headers?: Record<string, string>;
}

/** A call's query, body (JSON, or `content` sent as it is) and timeout rule. */
export interface RequestOptions extends CallOptions {
  query?: Record<string, QueryValue>;
  body?: unknown;
  content?: Content;
  /** No read timeout: commands and builds run as long as their own timeout says. */
  unbounded?: boolean;
}

export class HTTP {
  readonly baseUrl: string;
  readonly retry: RetryPolicy;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;

  constructor(options: ClientOptions = {}) {
    const token = options.token || process.env.SHELLS_API_TOKEN;
    if (!token) throw new Unauthenticated("No API token: pass { token } or set SHELLS_API_TOKEN.");
    this.baseUrl = (options.baseUrl || process.env.SHELLS_BASE_URL || DEFAULT_BASE_URL).replace(/\/+$/, "");
    this.retry = options.retry ?? new RetryPolicy();
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const given = Object.fromEntries(Object.entries(options.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    this.headers = {
      "user-agent": `shells-typescript/${VERSION}`,
      [DOOR_HEADER.toLowerCase()]: "sdk",
      ...given,
      authorization: `Bearer ${token}`,
    };
  }

  url(path: string, query?: Record<string, QueryValue>): string {
    const url = new URL(this.baseUrl + path);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
    }
    return url.toString();
  }

  /** Send one call and return its successful answer, its body unread, retrying only what the
   * `RetryPolicy` allows. Rejects with the error of the server's code, `Unavailable` / `Timeout`
   * when no answer came, or the signal's reason when the caller aborted. */
  async send(method: string, path: string, request: RequestOptions = {}): Promise<Response> {
    const requestId = randomUUID().replaceAll("-", "");
    const url = this.url(path, request.query);
    for (let retry = 0; ; retry++) {
      request.signal?.throwIfAborted();
      const signals = request.signal ? [request.signal] : [];
      if (!request.unbounded) signals.push(AbortSignal.timeout(this.timeoutMs));
      const headers: Record<string, string> = { ...this.headers, [REQUEST_ID_HEADER]: requestId };
      let body: RequestInit["body"];
      if (request.body !== undefined) {
        headers["content-type"] = "application/json";
        body = JSON.stringify(request.body);
      } else if (request.content !== undefined) {
        body = bodyOf(request.content);
      }
      let failure: Failure;
      let wait = 0;
      try {
        const response = await fetch(url, {
          method,
          headers,
          body,
          signal: signals.length ? AbortSignal.any(signals) : undefined,
          // A streamed upload is sent while the answer may already come (fetch's `duplex`).
          ...(body instanceof ReadableStream ? { duplex: "half" } : {}),
        } as RequestInit);
        if (response.ok) return response;
        const payload = await response.json().catch(() => null);
        failure = { kind: "status", status: response.status };
        if (!this.retry.allows(method, retry, failure)) {
          throw errorFromWire(response.status, payload, response.headers.get(REQUEST_ID_HEADER) ?? requestId);
        }
        if (response.status === RATE_LIMITED) wait = retryAfter(payload, response.headers.get("retry-after"));
      } catch (error) {
        if (error instanceof ShellsError) throw error;
        if (request.signal?.aborted) throw request.signal.reason;
        const sent = !NOT_SENT_CODES.has(causeCode(error));
        if (!this.retry.allows(method, retry, { kind: "transport", sent })) {
          throw transportError(error, url, requestId);
        }
      }
      await sleep(Math.max(wait, this.retry.delay(retry)) * 1000, undefined, { signal: request.signal }).catch(() => {
        throw request.signal!.reason; // aborted while waiting to retry
      });
    }
  }

  /** Send one call and decode its JSON answer (`undefined` when it has none). */
  async call<T = Json>(method: string, path: string, request: RequestOptions = {}): Promise<T> {
    const response = await this.send(method, path, request);
    const text = await readBody(response, () => response.text(), request.signal);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** Send one call whose answer is a stream of JSON lines and yield each line; an `{"type": "error"}`
   * line rejects with its error, and a connection lost while reading rejects with `Unavailable`. */
  async *ndjson(method: string, path: string, request: RequestOptions): AsyncGenerator<Json> {
    const response = await this.send(method, path, { ...request, unbounded: true });
    const requestId = response.headers.get(REQUEST_ID_HEADER) ?? undefined;
    let pending = "";
    const decoder = new TextDecoder();
    const reader = response.body!.getReader();
    try {
      for (;;) {
        const { done, value } = await readBody(response, () => reader.read(), request.signal);
        pending += done ? decoder.decode() : decoder.decode(value, { stream: true });
        const lines = pending.split("\n");
        pending = done ? "" : lines.pop()!;
        for (const line of lines) {
          if (!line.trim()) continue;
          const item = JSON.parse(line) as Json;
          if (item.type === "error") throw errorFromWire(response.status, item, requestId);
          yield item;
        }
        if (done) return;
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }
}

/** Await a read of an answer's body, turning a connection lost on the way into `Unavailable`. */
export async function readBody<T>(response: Response, read: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    throw transportError(error, response.url, response.headers.get(REQUEST_ID_HEADER) ?? undefined);
  }
}

function bodyOf(content: Content): NonNullable<RequestInit["body"]> {
  if (typeof content !== "function") return content;
  const stream = content();
  return stream instanceof ReadableStream ? stream : ReadableStream.from(stream);
}

function causeCode(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown } } | undefined)?.cause;
  return typeof cause?.code === "string" ? cause.code : "";
}

/** The error for a request to `url` that got no (complete) answer. */
export function transportError(error: unknown, url: string, requestId: string | undefined): ShellsError {
  const name = (error as Error | undefined)?.name;
  const cause = (error as { cause?: Error } | undefined)?.cause;
  const what = `${name ?? "Error"}: ${(error as Error | undefined)?.message ?? error}${cause?.message ? `: ${cause.message}` : ""}`;
  const result =
    name === "TimeoutError"
      ? new Timeout(
          `No answer from ${url} in time; raise the client's timeoutMs or check that the server is not overloaded.`,
          {},
          { cause: error },
        )
      : new Unavailable(
          `The connection to ${url} failed (${what}); check SHELLS_BASE_URL and that the server runs. ` +
            "Requests that may have reached it (exec, create, actions) are not sent again.",
          {},
          { cause: error },
        );
  result.requestId = requestId;
  return result;
}
