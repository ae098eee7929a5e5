// Small pure helpers for showing records.

export function age(iso, now) {
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function clock(iso) {
  return new Date(iso).toLocaleTimeString([], { hour12: false });
}

export function countdown(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** One line of the activity terminal for an event record. */
export function eventLine(e) {
  const what = e.kind === "state" ? `state → ${e.outcome}` : `${e.action} ${e.outcome}`;
  const extra = [];
  if (e.message) extra.push(e.message);
  if (e.details && e.details.snapshot) extra.push(e.details.snapshot);
  if (e.details && e.details.exit_code !== undefined) extra.push(`exit ${e.details.exit_code}`);
  const tail = extra.length ? ` — ${extra.join(" · ")}` : "";
  return `${clock(e.at)}  ${e.principal}@${e.door}  ${what}${tail}`;
}

export function errorText(e) {
  const id = e.requestId ? ` (request ${e.requestId})` : "";
  return `${e.code ? e.code + ": " : ""}${e.message}${id}`;
}

/** Money as the server sends it (a decimal string, six places) in whole micro-dollars, so sums and
 * differences stay exact (floats would not). */
export function micros(usd) {
  const [whole, frac = ""] = String(usd).replace("-", "").split(".");
  const n = BigInt(whole || "0") * 1000000n + BigInt((frac + "000000").slice(0, 6));
  return String(usd).startsWith("-") ? -n : n;
}

/** Micro-dollars back to the server's notation: "12.345678". */
export function fromMicros(n) {
  const sign = n < 0n ? "-" : "";
  const abs = n < 0n ? -n : n;
  return `${sign}${abs / 1000000n}.${String(abs % 1000000n).padStart(6, "0")}`;
}

export const usd = (amount) => `$${amount}`;

/** A number of seconds for people: "2h 05m", "3m 07s", "12.4s". */
export function duration(seconds) {
  const s = Math.floor(seconds);
  if (s < 60) return `${seconds.toFixed(1)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** The human duration next to an exact count of seconds, where it adds something (a minute or more). */
export const longDuration = (seconds) => (seconds >= 60 ? duration(seconds) : "");
