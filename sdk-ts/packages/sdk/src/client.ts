// The client: one per server (`new Shells({ baseUrl, token })`, or SHELLS_BASE_URL / SHELLS_API_TOKEN).
import type { RequestBody } from "./generated/openapi.js";
import { HTTP, type CallOptions, type ClientOptions, type Json, type RequestOptions } from "./http.js";
import { camel, type ActionResult, type RuntimeOffer, type ShellInfo, type TermCredential, type UsageReport } from "./models.js";
import { BucketCredentials, Networks, Snapshots, Templates, Volumes } from "./resources.js";
import { act, deleteShell, mintTerm, Shell, shellPath, type ActionName, type ActionParams, type NetworkMode } from "./shell.js";

type CreateBody = RequestBody<"POST /v1/shells">;
/** A language preset: `bash`, `python`, `node`, `rust` or `go` (from the OpenAPI document). */
export type Language = NonNullable<CreateBody["language"]>;
/** An isolation class: `container`, `microvm` or `wasm`. */
export type Runtime = NonNullable<CreateBody["runtime"]>;
/** A size: vCPUs and memory (`s-1vcpu-512mb`, …). */
export type ShapeName = NonNullable<CreateBody["shape"]>;

/** How to create a shell; everything is optional and left out means the server's default. */
export interface CreateOptions extends CallOptions {
  /** `bash` (default), `python`, `node`, `rust` or `go`. */
  language?: Language;
  /** `container` (default), `microvm` or `wasm`. */
  runtime?: Runtime;
  /** `sealed` (default), `localhost` or `internet`. */
  network?: NetworkMode;
  /** With `internet`: the only `host:port` destinations allowed (implies `internet`). */
  allow?: readonly string[];
  /** Private networks to attach the shell to, by name. */
  networks?: readonly string[];
  /** CPU and memory, such as `s-1vcpu-512mb`. */
  shape?: ShapeName;
  /** The root filesystem, such as `rust:1`; the language's preset when not given. */
  template?: string;
  /** Create the shell as a copy of this snapshot. */
  snapshot?: string;
  name?: string;
  /** Environment variables of every command in the shell. */
  env?: Record<string, string>;
  /** Free-form tags; `list({ label: "key=value" })` finds them. */
  labels?: Record<string, string>;
  /** Pause the shell after this many seconds without activity (0: never; classes that can pause). */
  idleTimeoutS?: number;
  /** Your buckets served from the host at paths in the shell; `credentials` holds the keys or the name
   * of credentials stored with `shells.bucketCredentials.create`. */
  mounts?: CreateBody["mounts"];
  /** Your volumes at paths in the shell: `[{ name, path, read_only }]`. */
  volumes?: CreateBody["volumes"];
  /** Mirror `/workspace` to your bucket: `{ bucket, endpoint, prefix, credentials }`. */
  sync?: CreateBody["sync"];
}

/** The body of `POST /v1/shells`. Without a language or a snapshot the shell is `bash`. */
export function createBody(options: CreateOptions): CreateBody {
  const body: CreateBody = {};
  if (options.runtime !== undefined) body.runtime = options.runtime;
  if (options.shape !== undefined) body.shape = options.shape;
  if (options.template !== undefined) body.template = options.template;
  if (options.snapshot !== undefined) body.snapshot = options.snapshot;
  if (options.name !== undefined) body.name = options.name;
  if (options.language !== undefined || options.snapshot === undefined) body.language = options.language ?? "bash";
  if (options.allow?.length) body.network = { mode: options.network ?? "internet", allow: [...options.allow] };
  else if (options.network !== undefined) body.network = options.network;
  if (options.networks) body.networks = [...options.networks];
  if (options.env) body.env = { ...options.env };
  if (options.labels) body.labels = { ...options.labels };
  if (options.idleTimeoutS !== undefined) body.idle_timeout_s = options.idleTimeoutS;
  if (options.mounts !== undefined) body.mounts = options.mounts;
  if (options.volumes !== undefined) body.volumes = options.volumes;
  if (options.sync !== undefined) body.sync = options.sync;
  return body;
}

export class Shells {
  readonly #http: HTTP;
  readonly templates: Templates;
  readonly networks: Networks;
  readonly snapshots: Snapshots;
  readonly volumes: Volumes;
  readonly bucketCredentials: BucketCredentials;

  /** Rejects nothing, throws `Unauthenticated` when no token is given and SHELLS_API_TOKEN is unset. */
  constructor(options: ClientOptions = {}) {
    this.#http = new HTTP(options);
    this.templates = new Templates(this.#http);
    this.networks = new Networks(this.#http);
    this.snapshots = new Snapshots(this.#http);
    this.volumes = new Volumes(this.#http);
    this.bucketCredentials = new BucketCredentials(this.#http);
  }

  get baseUrl(): string {
    return this.#http.baseUrl;
  }

  /** A call this SDK has no method for, with its rules (token, request id, retries, error classes):
   * the decoded JSON answer in the server's own wire form (snake_case). */
  request<T = Json>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    return this.#http.call<T>(method, path, options);
  }

  /** As `request`, the successful answer handed over unread (to stream its body). */
  requestRaw(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    return this.#http.send(method, path, options);
  }

  /** What the server runs: version, runtimes with their capabilities, languages, shapes. */
  info(options: CallOptions = {}): Promise<Json> {
    return this.#http.call("GET", "/v1/info", options);
  }

  /** The runtime matrix: every language preset in every isolation class, available or why not. */
  async runtimes(options: CallOptions = {}): Promise<RuntimeOffer[]> {
    return camel<RuntimeOffer[]>((await this.#http.call<{ runtimes: unknown[] }>("GET", "/v1/runtimes", options)).runtimes);
  }

  /** Create a running shell and return its handle. Rejects with `InvalidRequest` (the message names
   * the option), `TemplateNotFound` / `SnapshotNotFound`, `FeatureUnavailable`, `QuotaExceeded`, or
   * `Unavailable` (a create is never sent twice). */
  async create(options: CreateOptions = {}): Promise<Shell> {
    const answer = await this.#http.call("POST", "/v1/shells", { body: createBody(options), signal: options.signal });
    return new Shell(this.#http, camel<ShellInfo>(answer));
  }

  /** CreateOS-style create: `rootfs` is the template (`"devbox:1"`), the rest as for `create`. */
  createSandbox(options: CreateOptions & { rootfs?: string } = {}): Promise<Shell> {
    const { rootfs, ...rest } = options;
    return this.create(rootfs === undefined ? rest : { ...rest, template: rootfs });
  }

  /** The shell with this id. Rejects with `ShellNotFound`. */
  async get(id: string, options: CallOptions = {}): Promise<Shell> {
    return new Shell(this.#http, camel<ShellInfo>(await this.#http.call("GET", shellPath(id), options)));
  }

  /** Your shells, optionally only those in `state`, of `runtime`, or with `label` (`key` or `key=value`). */
  async list(options: CallOptions & { state?: string; runtime?: string; label?: string } = {}): Promise<Shell[]> {
    const { signal, ...query } = options;
    const answer = await this.#http.call<{ shells: unknown[] }>("GET", "/v1/shells", { query, signal });
    return camel<ShellInfo[]>(answer.shells).map((info) => new Shell(this.#http, info));
  }

  /** Delete a shell by id; `false` if it was already gone. */
  delete(id: string, options: CallOptions = {}): Promise<boolean> {
    return deleteShell(this.#http, id, options);
  }

  /** The flat form: run one lifecycle action on a shell by id. */
  action(id: string, action: ActionName, params: ActionParams = {}, options: CallOptions = {}): Promise<ActionResult> {
    return act(this.#http, id, action, params, options);
  }

  /** The flat form: a terminal credential for a shell by id. */
  term(id: string, options: CallOptions & { ttlS?: number } = {}): Promise<TermCredential> {
    return mintTerm(this.#http, id, options);
  }

  /** What shells ran and cost from `start` (default: the first of this month, UTC) to `end` (now),
   * by `shell`, `class`, `day` or `principal`. Rejects with `InvalidRequest` or `TenantNotFound`. */
  async usage(
    options: CallOptions & { start?: Date | string; end?: Date | string; groupBy?: string; tenant?: string } = {},
  ): Promise<UsageReport> {
    const iso = (t: Date | string | undefined) => (t instanceof Date ? t.toISOString() : t);
    const query = { from: iso(options.start), to: iso(options.end), group_by: options.groupBy ?? "shell", tenant: options.tenant };
    return camel<UsageReport>(await this.#http.call("GET", "/v1/usage", { query, signal: options.signal }));
  }
}
