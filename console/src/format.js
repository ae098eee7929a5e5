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
