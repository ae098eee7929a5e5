// Which language x isolation class combinations this server offers, and why not when it does not.
// GET /v1/runtimes is the matrix; a server without it is read from GET /v1/info.

export const LANGUAGES = ["bash", "node", "python", "rust", "go"];

export function offer(info, runtimes, language, klass) {
  if (runtimes) {
    const row = runtimes.find((r) => r.language === language && r.runtime === klass);
    if (!row) return { available: false, reason: `${language} is not offered on ${klass}.` };
    return { available: row.available, reason: row.notes || "", version: row.version };
  }
  const rt = info.runtimes[klass];
  if (!rt) return { available: false, reason: `No ${klass} backend runs on this host.` };
  const ready = rt.languages.includes(language);
  return { available: true, reason: ready ? "" : `The ${language} template is not prepared on this host yet.` };
}

export function classOffered(info, runtimes, klass) {
  return LANGUAGES.some((l) => offer(info, runtimes, l, klass).available);
}
