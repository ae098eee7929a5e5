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

  async send(method, path, body) {
    const init = { method, headers: this.headers() };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(this.base + path, init);
    if (!r.ok) {
      const text = await r.text();
      throw new ApiError(r.status, text ? JSON.parse(text) : null, r.headers.get("x-request-id"));
    }
    return r;
  }

  async request(method, path, body) {
    const text = await (await this.send(method, path, body)).text();
    return text ? JSON.parse(text) : null;
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
  put(path, body) {
    return this.request("PUT", path, body);
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
  /** Build the built-in template `name`, calling `onStep({index, total, name})` as each step starts;
   * resolves with the template when the build's NDJSON stream says done (or cached). */
  async buildTemplate(name, onStep) {
    const r = await this.send("POST", "/v1/templates/build", { builtin: name });
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += value;
      const lines = pending.split("\n");
      pending = lines.pop();
      for (const line of lines.filter(Boolean)) {
        const event = JSON.parse(line);
        if (event.type === "step") onStep(event);
        else if (event.type === "error") throw new ApiError(500, event, r.headers.get("x-request-id"));
        else if (event.type === "done" || event.type === "cached") return event.template;
      }
    }
    throw new ApiError(503, null, r.headers.get("x-request-id"));
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
  /** GET /v1/shells/{id}/metrics from `start` (Unix seconds): CPU, memory and disk samples. */
  metrics(id, start) {
    return this.get(`/v1/shells/${encodeURIComponent(id)}/metrics?start=${start.toFixed(3)}`);
  }
  /** GET /v1/usage: `params` are from, to, group_by (shell, class, day, principal). */
  usage(params = {}) {
    return this.get(`/v1/usage?${new URLSearchParams(params)}`);
  }
  /** The same report as a CSV file: a Blob, and the file name the server suggests. */
  async usageCsv(params = {}) {
    const r = await this.send("GET", `/v1/usage?${new URLSearchParams({ ...params, format: "csv" })}`);
    const match = /filename="([^"]+)"/.exec(r.headers.get("content-disposition") || "");
    return { blob: await r.blob(), name: match ? match[1] : "usage.csv" };
  }
  pricing() {
    return this.get("/v1/pricing");
  }
  /** A tenant's month: cost, free tier, budget cap (tenant admins of it, and platform admins). */
  billing(tenant) {
    return this.get(`/v1/tenants/${encodeURIComponent(tenant)}/billing`);
  }
  mintTerm(id, ttl_s) {
    return this.post(`/v1/shells/${encodeURIComponent(id)}/term`, ttl_s ? { ttl_s } : {});
  }

  /** The tenant's volumes: size, holders, bytes used, when last in the object store. */
  volumes() {
    return this.get("/v1/volumes").then((r) => r.volumes);
  }
  createVolume(body) {
    return this.post("/v1/volumes", body);
  }
  deleteVolume(name) {
    return this.del(`/v1/volumes/${encodeURIComponent(name)}`);
  }
  /** The tenant's stored bucket credentials: names and key ids; never a secret. */
  bucketCredentials() {
    return this.get("/v1/bucket-credentials").then((r) => r.bucket_credentials);
  }
  createBucketCredentials(body) {
    return this.post("/v1/bucket-credentials", body);
  }
  deleteBucketCredentials(name) {
    return this.del(`/v1/bucket-credentials/${encodeURIComponent(name)}`);
  }
  /** GET /v1/shells/{id}/sync: where /workspace is mirrored and how far. */
  syncStatus(id) {
    return this.get(`/v1/shells/${encodeURIComponent(id)}/sync`);
  }

  /** The tenant's secrets: name, hosts, header, version, dates; never a value. */
  secrets() {
    return this.get("/v1/secrets").then((r) => r.secrets);
  }
  createSecret(body) {
    return this.post("/v1/secrets", body);
  }
  /** A rotation: the new value goes to the server, which answers the record without it. */
  rotateSecret(name, value) {
    return this.put(`/v1/secrets/${encodeURIComponent(name)}`, { value });
  }
  deleteSecret(name) {
    return this.del(`/v1/secrets/${encodeURIComponent(name)}`);
  }
  webhooks() {
    return this.get("/v1/webhooks").then((r) => r.webhooks);
  }
  /** The answer holds the signing secret, the only time the server shows it. */
  createWebhook(body) {
    return this.post("/v1/webhooks", body);
  }
  deleteWebhook(id) {
    return this.del(`/v1/webhooks/${encodeURIComponent(id)}`);
  }
  deliveries(id) {
    return this.get(`/v1/webhooks/${encodeURIComponent(id)}/deliveries?limit=50`).then((r) => r.deliveries);
  }
  testWebhook(id) {
    return this.post(`/v1/webhooks/${encodeURIComponent(id)}/test`);
  }
}
