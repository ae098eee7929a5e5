// The console's only way to the server: the public REST v1, with the caller's bearer token.
// Every request says X-Shells-Door: console, so the audit trail records where it came from.

export class ApiError extends Error {
  constructor(status, body, requestId) {
    const err = (body && body.error) || {};
    super(err.message || `The server answered ${status}.`);
    this.status = status;
    this.code = err.code || `http_${status}`;
    this.details = err.details || {};
    this.requestId = requestId;
  }
}

export class Api {
  constructor(token, base = "") {
    this.token = token;
    this.base = base;
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.token}`, "X-Shells-Door": "console", ...extra };
  }

  async request(method, path, body) {
    const init = { method, headers: this.headers() };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(this.base + path, init);
    const requestId = r.headers.get("x-request-id");
    const text = await r.text();
    const data = text ? JSON.parse(text) : null;
    if (!r.ok) throw new ApiError(r.status, data, requestId);
    return data;
  }

  get(path) {
    return this.request("GET", path);
  }
  post(path, body = {}) {
    return this.request("POST", path, body);
  }
  del(path) {
    return this.request("DELETE", path);
  }

  info() {
    return this.get("/v1/info");
  }
  /** The runtime matrix (one row per language x class), or null on a server without it. */
  async runtimes() {
    try {
      return (await this.get("/v1/runtimes")).runtimes;
    } catch (e) {
      if (e.status === 404) return null;
      throw e;
    }
  }
  shells() {
    return this.get("/v1/shells").then((r) => r.shells);
  }
  shell(id) {
    return this.get(`/v1/shells/${encodeURIComponent(id)}`);
  }
  create(body) {
    return this.post("/v1/shells", body);
  }
  act(id, capability, params = {}) {
    return this.post(`/v1/shells/${encodeURIComponent(id)}/actions`, { capability, ...params });
  }
  remove(id) {
    return this.del(`/v1/shells/${encodeURIComponent(id)}`);
  }
  events(id, after = 0) {
    return this.get(`/v1/shells/${encodeURIComponent(id)}/events?after=${after}&limit=5000`).then(
      (r) => r.events,
    );
  }
  network(id) {
    return this.get(`/v1/shells/${encodeURIComponent(id)}/network`);
  }
  mintTerm(id, ttl_s) {
    return this.post(`/v1/shells/${encodeURIComponent(id)}/term`, ttl_s ? { ttl_s } : {});
  }
}
