// What lives beside shells: templates, private networks, snapshots, volumes and stored bucket
// credentials (`shells.templates`, …).
import { Unavailable } from "./errors.js";
import type { RequestBody } from "./generated/openapi.js";
import type { CallOptions, HTTP } from "./http.js";
import {
  camel,
  type BucketCredential,
  type BuildEvent,
  type Network,
  type Snapshot,
  type Template,
  type Volume,
} from "./models.js";

/** Templates: the root filesystems shells start from. */
export class Templates {
  readonly #http: HTTP;

  constructor(http: HTTP) {
    this.#http = http;
  }

  /** Every template this server has, built or not. */
  async list(options: CallOptions = {}): Promise<Template[]> {
    return camel<Template[]>((await this.#http.call<{ templates: unknown[] }>("GET", "/v1/templates", options)).templates);
  }

  /** The template each language uses when `create` names none: `{ python: "python:1" }`. */
  async presets(options: CallOptions = {}): Promise<Record<string, string>> {
    return (await this.#http.call<{ presets: Record<string, string> }>("GET", "/v1/templates", options)).presets;
  }

  /** One template by `name:tag` (or `name`, its newest tag). Rejects with `TemplateNotFound`. */
  async get(name: string, options: CallOptions = {}): Promise<Template> {
    return camel<Template>(await this.#http.call("GET", `/v1/templates/${encodeURIComponent(name)}`, options));
  }

  /** Delete a template. Rejects with `TemplateNotFound` or `TemplateInUse`. */
  async delete(name: string, options: CallOptions = {}): Promise<void> {
    await this.#http.call("DELETE", `/v1/templates/${encodeURIComponent(name)}`, options);
  }

  /** Build a template from a TOML `spec` or a `builtin` one (`"rust:1"`) and resolve with it; the same
   * content is not built twice. `onEvent` receives the steps and their output as they happen.
   * Rejects with `InvalidTemplateSpec`, `TemplateExists` or `TemplateBuildFailed`. */
  async build(
    source: ({ spec: string } | { builtin: string }) & RequestBody<"POST /v1/templates/build">,
    options: CallOptions & { onEvent?: (event: BuildEvent) => void } = {},
  ): Promise<Template> {
    const { onEvent, signal } = options;
    if (!onEvent) {
      return camel<Template>(
        await this.#http.call("POST", "/v1/templates/build", { query: { wait: "true" }, body: source, unbounded: true, signal }),
      );
    }
    for await (const line of this.#http.ndjson("POST", "/v1/templates/build", { body: source, signal })) {
      const event = camel<BuildEvent>(line);
      onEvent(event);
      if (event.type === "done" || event.type === "cached") return event.template;
    }
    throw new Unavailable("The build's event stream ended before it finished; the server may have restarted.");
  }

  /** Save a shell's system (and `/workspace` with `includeWorkspace`) as template `name` (`"myenv:1"`). */
  async save(shellId: string, name: string, options: CallOptions & { includeWorkspace?: boolean } = {}): Promise<Template> {
    const body: RequestBody<"POST /v1/templates"> = { from_shell: shellId, name, include_workspace: options.includeWorkspace ?? false };
    return camel<Template>(await this.#http.call("POST", "/v1/templates", { body, signal: options.signal }));
  }
}

/** Private networks between shells. */
export class Networks {
  readonly #http: HTTP;

  constructor(http: HTTP) {
    this.#http = http;
  }

  /** Create a private network. Rejects with `InvalidRequest` or `NetworkExists`. */
  async create(name: string, options: CallOptions = {}): Promise<Network> {
    return camel<Network>(await this.#http.call("POST", "/v1/networks", { body: { name } satisfies RequestBody<"POST /v1/networks">, signal: options.signal }));
  }

  async list(options: CallOptions = {}): Promise<Network[]> {
    return camel<Network[]>((await this.#http.call<{ networks: unknown[] }>("GET", "/v1/networks", options)).networks);
  }

  /** One network with its shells. Rejects with `NetworkNotFound`. */
  async get(name: string, options: CallOptions = {}): Promise<Network> {
    return camel<Network>(await this.#http.call("GET", `/v1/networks/${encodeURIComponent(name)}`, options));
  }

  /** Delete a network. Rejects with `NetworkNotFound` or `NetworkInUse`. */
  async delete(name: string, options: CallOptions = {}): Promise<void> {
    await this.#http.call("DELETE", `/v1/networks/${encodeURIComponent(name)}`, options);
  }

  /** Put a shell on the network (at once if it runs, at its next start otherwise). */
  async attach(name: string, shellId: string, options: CallOptions = {}): Promise<Network> {
    const body: RequestBody<"POST /v1/networks/{name}/shells"> = { shell_id: shellId };
    return camel<Network>(await this.#http.call("POST", `/v1/networks/${encodeURIComponent(name)}/shells`, { body, signal: options.signal }));
  }

  async detach(name: string, shellId: string, options: CallOptions = {}): Promise<void> {
    await this.#http.call("DELETE", `/v1/networks/${encodeURIComponent(name)}/shells/${encodeURIComponent(shellId)}`, options);
  }
}

/** Snapshots of your shells; take one with `shell.actions.snapshot()`. */
export class Snapshots {
  readonly #http: HTTP;

  constructor(http: HTTP) {
    this.#http = http;
  }

  /** Your snapshots, or those of one shell. */
  async list(options: CallOptions & { shellId?: string } = {}): Promise<Snapshot[]> {
    const answer = await this.#http.call<{ snapshots: unknown[] }>("GET", "/v1/snapshots", {
      query: { shell_id: options.shellId },
      signal: options.signal,
    });
    return camel<Snapshot[]>(answer.snapshots);
  }

  /** Delete one of your snapshots (shells made from it keep running). Rejects with `SnapshotNotFound`. */
  async delete(snapshotId: string, options: CallOptions = {}): Promise<void> {
    await this.#http.call("DELETE", `/v1/snapshots/${encodeURIComponent(snapshotId)}`, options);
  }
}

/** Your tenant's volumes: filesystems that outlive every shell. Attach one at create:
 * `volumes: [{ name, path, read_only }]` (any number of shells read-only, one read-write). */
export class Volumes {
  readonly #http: HTTP;

  constructor(http: HTTP) {
    this.#http = http;
  }

  /** A new, empty volume of `sizeGib` GiB. Rejects with `InvalidRequest`, `VolumeExists` or `QuotaExceeded`. */
  async create(name: string, sizeGib: number, options: CallOptions = {}): Promise<Volume> {
    const body: RequestBody<"POST /v1/volumes"> = { name, size_gib: sizeGib };
    return camel<Volume>(await this.#http.call("POST", "/v1/volumes", { body, signal: options.signal }));
  }

  async list(options: CallOptions = {}): Promise<Volume[]> {
    return camel<Volume[]>((await this.#http.call<{ volumes: unknown[] }>("GET", "/v1/volumes", options)).volumes);
  }

  /** One volume with the shells that hold it. Rejects with `VolumeNotFound`. */
  async get(name: string, options: CallOptions = {}): Promise<Volume> {
    return camel<Volume>(await this.#http.call("GET", `/v1/volumes/${encodeURIComponent(name)}`, options));
  }

  /** Delete a volume and its files. Rejects with `VolumeNotFound`, or `VolumeInUse` while a shell holds it. */
  async delete(name: string, options: CallOptions = {}): Promise<void> {
    await this.#http.call("DELETE", `/v1/volumes/${encodeURIComponent(name)}`, options);
  }
}

/** S3 key pairs stored once for your tenant (the secret sealed, never shown again); bucket mounts and
 * workspace sync name them as `credentials: "<name>"` instead of carrying keys. Storing and deleting
 * them needs `tenant.admin`. */
export class BucketCredentials {
  readonly #http: HTTP;

  constructor(http: HTTP) {
    this.#http = http;
  }

  /** Store a key pair as `name`. Rejects with `InvalidRequest`, `AlreadyExists`, `QuotaExceeded` or `PermissionDenied`. */
  async create(name: string, accessKeyId: string, secretAccessKey: string, options: CallOptions = {}): Promise<BucketCredential> {
    const body: RequestBody<"POST /v1/bucket-credentials"> = { name, access_key_id: accessKeyId, secret_access_key: secretAccessKey };
    return camel<BucketCredential>(await this.#http.call("POST", "/v1/bucket-credentials", { body, signal: options.signal }));
  }

  /** The stored credentials: names and key ids, never a secret. */
  async list(options: CallOptions = {}): Promise<BucketCredential[]> {
    const answer = await this.#http.call<{ bucket_credentials: unknown[] }>("GET", "/v1/bucket-credentials", options);
    return camel<BucketCredential[]>(answer.bucket_credentials);
  }

  /** Delete them (shells made with them keep their own copy). Rejects with `BucketCredentialsNotFound`. */
  async delete(name: string, options: CallOptions = {}): Promise<void> {
    await this.#http.call("DELETE", `/v1/bucket-credentials/${encodeURIComponent(name)}`, options);
  }
}
