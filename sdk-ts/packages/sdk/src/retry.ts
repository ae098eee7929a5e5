// When the SDK sends a request again, and how long it waits first: the Python SDK's rule
// (src/shells/sdk/retry.py). A request is sent again only if it certainly never reached the server
// (the connection could not be made), if the server refused it before doing anything (429: the
// token's rate limit), or if sending it twice does no harm (GET, PUT, DELETE). A command, a code run,
// a create or an action is otherwise never replayed: the server may already be running it.

export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);
export const RETRY_STATUSES: ReadonlySet<number> = new Set([502, 503, 504]);
/** Refused by the rate limit at authentication, before anything ran: safe to send again, later. */
export const RATE_LIMITED = 429;
/** Failures of Node's fetch that happen before a byte of the request left this process. */
export const NOT_SENT_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/** How a failed attempt failed: with no answer (`sent` says whether the request may have left), or
 * with an answer of `status`. */
export type Failure = { kind: "transport"; sent: boolean } | { kind: "status"; status: number };

export interface RetryOptions {
  maxRetries?: number;
  backoffS?: number;
  maxBackoffS?: number;
}

/** `maxRetries` more attempts at most, waiting `backoffS * 2**n` (capped at `maxBackoffS`, with
 * jitter) before attempt `n + 1`. `new RetryPolicy({ maxRetries: 0 })` never retries. */
export class RetryPolicy {
  readonly maxRetries: number;
  readonly backoffS: number;
  readonly maxBackoffS: number;

  constructor({ maxRetries = 3, backoffS = 0.2, maxBackoffS = 5 }: RetryOptions = {}) {
    this.maxRetries = maxRetries;
    this.backoffS = backoffS;
    this.maxBackoffS = maxBackoffS;
  }

  /** Seconds to wait before retry number `retry` (0-based): between half and all of the exponential
   * step, so that many clients do not come back at the same instant. */
  delay(retry: number): number {
    const step = Math.min(this.maxBackoffS, this.backoffS * 2 ** retry);
    return step * (0.5 + Math.random() / 2);
  }

  /** Whether a request that failed so may be sent again. */
  allows(method: string, retry: number, failure: Failure): boolean {
    if (retry >= this.maxRetries) return false;
    if (failure.kind === "transport" ? !failure.sent : failure.status === RATE_LIMITED) return true;
    if (!IDEMPOTENT_METHODS.has(method.toUpperCase())) return false;
    return failure.kind === "transport" || RETRY_STATUSES.has(failure.status);
  }
}

/** Seconds a 429 answer asks the caller to wait: `details.retry_after_s` (precise), else the
 * `Retry-After` header (whole seconds), else 0. */
export function retryAfter(payload: unknown, header: string | null): number {
  const seconds = Number(
    (payload as { error?: { details?: { retry_after_s?: unknown } } } | null)?.error?.details?.retry_after_s,
  );
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const fromHeader = Number(header ?? 0);
  return Number.isFinite(fromHeader) ? Math.max(0, fromHeader) : 0;
}
