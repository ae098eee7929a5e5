// A handle on one shell: its record, commands, files, actions, terminal, ports and network.
// `await using shell = await shells.create(...)` deletes it when the block ends.
import { Commands, runToEnd, type RunCodeOptions, type RunOptions } from "./commands.js";
import { ShellNotFound } from "./errors.js";
import { Files } from "./files.js";
import type { RequestBody } from "./generated/openapi.js";
import type { CallOptions, HTTP, Json } from "./http.js";
import { camel, type ActionResult, type CommandResult, type Event, type NetworkStatus, type Port, type ShellInfo, type Snapshot, type TermCredential, type TermCredentialInfo } from "./models.js";
import { Terminal, type TerminalOptions } from "./terminal.js";

/** The lifecycle actions (`shells.action(id, name)`): restart, snapshot, logs, reinstall_os, stop,
 * start, wipe_state, pause, resume, fork. stop, reinstall_os and wipe_state destroy processes or files
 * for good; pause, resume and fork need a class that can (microvm). */
export type ActionName = RequestBody<"POST /v1/shells/{shell_id}/actions">["capability"];

/** `sealed`, `localhost` or `internet`. */
export type NetworkMode = NonNullable<RequestBody<"PUT /v1/shells/{shell_id}/network">["mode"]>;

/** What an action takes: `snapshot` a `name`, `logs` `max_bytes`, `fork` `count`. */
export type ActionParams = RequestBody<"POST /v1/shells/{shell_id}/actions/{action}">;

export const shellPath = (id: string) => `/v1/shells/${encodeURIComponent(id)}`;

/** Run one action on a shell by id: the shell's record after it, and what the action returned. */
export async function act(http: HTTP, id: string, action: ActionName, params: ActionParams = {}, options: CallOptions = {}): Promise<ActionResult> {
  const answer = await http.call<Json>("POST", `${shellPath(id)}/actions/${action}`, { body: params, signal: options.signal });
  return { shell: camel<ShellInfo>(answer.shell), result: answer.result as Record<string, unknown> };
}

/** Mint a terminal credential for a shell by id. Rejects with `ShellNotFound` or `InvalidState`. */
export async function mintTerm(http: HTTP, id: string, options: CallOptions & { ttlS?: number } = {}): Promise<TermCredential> {
  const body: RequestBody<"POST /v1/shells/{shell_id}/term"> = options.ttlS === undefined ? {} : { ttl_s: options.ttlS };
  return camel<TermCredential>(await http.call("POST", `${shellPath(id)}/term`, { body, signal: options.signal }));
}

/** Delete a shell by id and everything in it (its snapshots stay); `false` if it was already gone. */
export async function deleteShell(http: HTTP, id: string, options: CallOptions = {}): Promise<boolean> {
  try {
    await http.call("DELETE", shellPath(id), { signal: options.signal });
    return true;
  } catch (error) {
    if (error instanceof ShellNotFound) return false;
    throw error;
  }
}

export class Shell implements AsyncDisposable {
  readonly #http: HTTP;
  readonly #path: string;
  /** The record as last seen; actions update it and `refresh()` reloads it. */
  info: ShellInfo;
  readonly commands: Commands;
  readonly files: Files;
  readonly actions: Actions;
  readonly ports: Ports;
  readonly terminals: Terminals;

  constructor(http: HTTP, info: ShellInfo) {
    this.#http = http;
    this.#path = shellPath(info.id);
    this.info = info;
    this.commands = new Commands(http, this.#path);
    this.files = new Files(http, this.#path);
    this.actions = new Actions(http, this);
    this.ports = new Ports(http, this.#path);
    this.terminals = new Terminals(http, info.id);
  }

  get id(): string {
    return this.info.id;
  }

  /** Reload the record into `info`. Rejects with `ShellNotFound` once it is gone. */
  async refresh(options: CallOptions = {}): Promise<ShellInfo> {
    this.info = camel<ShellInfo>(await this.#http.call("GET", this.#path, { signal: options.signal }));
    return this.info;
  }

  /** Delete the shell and everything in it (its snapshots stay); `false` if it was already gone. */
  kill(options: CallOptions = {}): Promise<boolean> {
    return deleteShell(this.#http, this.id, options);
  }

  /** The CreateOS SDK's name for `kill`. */
  async destroy(options: CallOptions = {}): Promise<void> {
    await this.kill(options);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }

  /** CreateOS-style: run `command` with `args` (no shell) and resolve with `{ result }`. */
  async runCommand(command: string, args: readonly string[] = [], options: Omit<RunOptions, "args"> = {}): Promise<{ result: CommandResult }> {
    return { result: await this.commands.run(command, { ...options, args }) };
  }

  /** Run a piece of code with its language's interpreter (or compiler, then the program).
   * Rejects with `InvalidRequest` (a language the shell cannot run) or `InvalidState`. */
  runCode(code: string, options: RunCodeOptions = {}): Promise<CommandResult> {
    const body: RequestBody<"POST /v1/shells/{shell_id}/run"> = { code };
    if (options.language !== undefined) body.language = options.language;
    if (options.timeoutS !== undefined) body.timeout_s = options.timeoutS;
    return runToEnd(this.#http, `${this.#path}/run`, body, options);
  }

  /** A short-lived credential for the shell's terminal (default 300 s, at most 900): `terminals.create`. */
  term(options: CallOptions & { ttlS?: number } = {}): Promise<TermCredential> {
    return this.terminals.create(options);
  }

  /** Mint a credential and attach to the shell's live terminal. */
  async terminal(options: TerminalOptions & { ttlS?: number } = {}): Promise<Terminal> {
    return Terminal.open(await this.term(options), options);
  }

  /** The shell's activity (who changed it or ran what in it, through which door), oldest first, after
   * event id `after`. Rejects with `ShellNotFound`. */
  async events(options: CallOptions & { after?: number } = {}): Promise<Event[]> {
    const answer = await this.#http.call<{ events: unknown[] }>("GET", `${this.#path}/events`, {
      query: { after: options.after ?? 0 },
      signal: options.signal,
    });
    return camel<Event[]>(answer.events);
  }

  /** The shell's network policy, private networks, addresses and blocked connections. */
  async network(options: CallOptions = {}): Promise<NetworkStatus> {
    return camel<NetworkStatus>(await this.#http.call("GET", `${this.#path}/network`, { signal: options.signal }));
  }

  /** Change the network policy of the running shell at once. Rejects with `InvalidRequest` (a bad
   * mode, `allow` without `internet`) or `FeatureUnavailable`. */
  async setNetwork(mode: NetworkMode, options: CallOptions & { allow?: readonly string[] } = {}): Promise<NetworkStatus> {
    const body = { mode, allow: [...(options.allow ?? [])] } satisfies RequestBody<"PUT /v1/shells/{shell_id}/network">;
    return camel<NetworkStatus>(await this.#http.call("PUT", `${this.#path}/network`, { body, signal: options.signal }));
  }
}

/** The lifecycle of one shell: `shell.actions.snapshot()`. Each updates `shell.info` and rejects with
 * `ShellNotFound`, `InvalidState` (its state does not allow it; the message says which do) or
 * `ActionNotSupported` (containers cannot pause or fork). */
export class Actions {
  readonly #http: HTTP;
  readonly #shell: Shell;

  constructor(http: HTTP, shell: Shell) {
    this.#http = http;
    this.#shell = shell;
  }

  /** Run an action by name and return its raw result. */
  async run(action: ActionName, params: ActionParams = {}, options: CallOptions = {}): Promise<Record<string, unknown>> {
    const answer = await act(this.#http, this.#shell.id, action, params, options);
    this.#shell.info = answer.shell;
    return answer.result;
  }

  /** Stop and start the shell: processes end, files stay. */
  async restart(options: CallOptions = {}): Promise<void> {
    await this.run("restart", {}, options);
  }

  /** Stop every process (DESTRUCTIVE); the filesystem stays until `start`. */
  async stop(options: CallOptions = {}): Promise<void> {
    await this.run("stop", {}, options);
  }

  async start(options: CallOptions = {}): Promise<void> {
    await this.run("start", {}, options);
  }

  /** Put the template's system back (DESTRUCTIVE); `/workspace` stays. */
  async reinstallOs(options: CallOptions = {}): Promise<void> {
    await this.run("reinstall_os", {}, options);
  }

  /** Put the template's system back and empty `/workspace` (DESTRUCTIVE). */
  async wipeState(options: CallOptions = {}): Promise<void> {
    await this.run("wipe_state", {}, options);
  }

  /** Freeze the shell with its memory, to `resume` later. */
  async pause(options: CallOptions = {}): Promise<void> {
    await this.run("pause", {}, options);
  }

  async resume(options: CallOptions = {}): Promise<void> {
    await this.run("resume", {}, options);
  }

  /** Make `count` running copies of the shell, memory included, and return them. */
  async fork(count = 1, options: CallOptions = {}): Promise<Shell[]> {
    const result = await this.run("fork", { count }, options);
    return camel<ShellInfo[]>(result.shells ?? []).map((info) => new Shell(this.#http, info));
  }

  /** Save the filesystem; `shells.create({ snapshot: snap.id })` makes a new shell from it. */
  async snapshot(name?: string, options: CallOptions = {}): Promise<Snapshot> {
    const result = await this.run("snapshot", name ? { name } : {}, options);
    return camel<Snapshot>(result.snapshot);
  }

  /** The end of the shell's console log (at most 256 KiB). */
  async logs(maxBytes?: number, options: CallOptions = {}): Promise<string> {
    const result = await this.run("logs", maxBytes ? { max_bytes: maxBytes } : {}, options);
    return String(result.logs);
  }
}

/** Ports of one shell reachable from outside: `shell.ports.expose(8000)`. */
export class Ports {
  readonly #http: HTTP;
  readonly #path: string;

  constructor(http: HTTP, shellPath: string) {
    this.#http = http;
    this.#path = `${shellPath}/ports`;
  }

  /** Make `port` reachable at `result.url`; unless `public`, a caller needs `result.token`.
   * Rejects with `InvalidRequest` (not 1-65535) or `InvalidState`. */
  async expose(port: number, options: CallOptions & { public?: boolean } = {}): Promise<Port> {
    const body = { port, public: options.public ?? false } satisfies RequestBody<"POST /v1/shells/{shell_id}/ports">;
    return camel<Port>(await this.#http.call("POST", this.#path, { body, signal: options.signal }));
  }

  async list(options: CallOptions = {}): Promise<Port[]> {
    return camel<Port[]>((await this.#http.call<{ ports: unknown[] }>("GET", this.#path, { signal: options.signal })).ports);
  }

  /** Stop exposing `port`. Rejects with `PortNotExposed`. */
  async close(port: number, options: CallOptions = {}): Promise<void> {
    await this.#http.call("DELETE", `${this.#path}/${port}`, { signal: options.signal });
  }
}

/** The terminal credentials of one shell: mint, list, revoke. */
export class Terminals {
  readonly #http: HTTP;
  readonly #id: string;

  constructor(http: HTTP, shellId: string) {
    this.#http = http;
    this.#id = shellId;
  }

  /** Mint a credential (default 300 s, at most 900). Rejects with `ShellNotFound` or `InvalidState`. */
  create(options: CallOptions & { ttlS?: number } = {}): Promise<TermCredential> {
    return mintTerm(this.#http, this.#id, options);
  }

  /** The shell's credentials, their tokens masked, with whether each is attached now. */
  async list(options: CallOptions = {}): Promise<TermCredentialInfo[]> {
    const answer = await this.#http.call<{ credentials: unknown[] }>("GET", `${shellPath(this.#id)}/term`, options);
    return camel<TermCredentialInfo[]>(answer.credentials);
  }

  /** Revoke a credential: a session attached with it ends. Rejects with `CredentialNotFound`. */
  async revoke(credentialId: string, options: CallOptions = {}): Promise<void> {
    await this.#http.call("DELETE", `${shellPath(this.#id)}/term/${encodeURIComponent(credentialId)}`, options);
  }
}
