// What the SDK returns: the server's JSON records with camelCase names (`exit_code` → `exitCode`).
// Times stay ISO 8601 strings; fields a newer server adds come along untyped, and enumerations
// (states, runtimes, modes) are plain strings, so an older SDK keeps working against a newer server.

/** Keys whose values are free-form maps (names chosen by the user, not by the API): kept as sent. */
const FREE_FORM = new Set(["labels", "env", "presets", "details", "versions", "runtime_details", "addresses", "classes"]);

/** A wire record with its keys in camelCase, recursively (free-form maps excepted). */
export function camel<T>(value: unknown): T {
  return convert(value) as T;
}

function convert(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(convert);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, inner]) => [
      key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()),
      FREE_FORM.has(key) ? inner : convert(inner),
    ]),
  );
}

export interface NetworkPolicy {
  /** `sealed`, `localhost` or `internet`. */
  mode: string;
  /** With `internet`: the only `host:port` destinations. */
  allow?: string[];
}

/** A shell's record as the server last reported it. */
export interface ShellInfo {
  id: string;
  name: string;
  /** `creating`, `running`, `paused`, `stopped`, `failed`, `lost` or `deleted`. */
  state: string;
  stateReason?: string;
  language: string;
  /** `container`, `microvm` or `wasm`. */
  runtime: string;
  network: NetworkPolicy;
  shape: string;
  template: string;
  snapshot?: string | null;
  region?: string;
  /** The machine that holds the shell (`local` on a one-box server). */
  node?: string;
  tenant?: string;
  owner?: string;
  envNames?: string[];
  labels?: Record<string, string>;
  idleTimeoutS?: number | null;
  createdAt?: string;
  updatedAt?: string;
  [key: string]: unknown;
}

export interface RuntimeOffer {
  language: string;
  runtime: string;
  available: boolean;
  version?: string;
  notes?: string;
}

/** How a command ended. */
export interface CommandExit {
  exitCode: number;
  /** The signal that killed it, if one did. */
  signal: number | null;
  timedOut: boolean;
  /** The server stopped collecting output at its cap. */
  truncated: boolean;
  durationMs: number;
}

/** A command's whole output and how it ended; a non-zero `exitCode` is a result, not an error. */
export interface CommandResult extends CommandExit {
  stdout: string;
  stderr: string;
}

/** One line of a command's stream. */
export type CommandEvent =
  | { type: "started"; pid: number }
  | { type: "stdout" | "stderr"; data: string }
  | ({ type: "exit" } & CommandExit);

export interface FileEntry {
  path: string;
  name: string;
  /** `file`, `dir`, `symlink` or `other`. */
  kind: string;
  size: number;
  mode: number;
  /** Last change, seconds since the epoch. */
  mtime: number;
  linkTarget?: string | null;
}

export interface Snapshot {
  id: string;
  shellId: string;
  runtime?: string;
  template?: string;
  language?: string;
  name?: string;
  createdAt?: string;
}

/** A volume of your tenant (`shells.volumes`). */
export interface Volume {
  id: string;
  name: string;
  sizeGib: number;
  createdAt?: string;
  /** `{ shellId, readOnly }` of every shell that holds it. */
  attached?: { shellId: string; readOnly: boolean }[];
  /** Bytes used on this machine (null where the server does not measure them, such as a cluster). */
  usedBytes?: number | null;
  /** When its files last reached the object store (after a writer let it go); null: never yet. */
  durableAt?: string | null;
  storedBytes?: number | null;
}

/** Bucket credentials stored once for the tenant (`shells.bucketCredentials`); never the secret. */
export interface BucketCredential {
  id: string;
  name: string;
  accessKeyId: string;
  createdAt?: string;
}

/** A short-lived credential for a shell's terminal; `shell.terminal()` opens it. */
export interface TermCredential {
  id: string;
  token: string;
  expiresAt: string;
  /** The terminal's WebSocket URL. */
  url: string;
}

/** A terminal credential as listed (its token masked). */
export interface TermCredentialInfo {
  id: string;
  shellId: string;
  principal: string;
  token: string;
  createdAt?: string;
  expiresAt?: string;
  revokedAt?: string | null;
  inUse: boolean;
}

export interface Port {
  port: number;
  url: string;
  /** Needed by callers of a port that is not public. */
  token?: string | null;
  public: boolean;
  createdAt?: string;
}

export interface NetworkStatus {
  policy: NetworkPolicy;
  networks: string[];
  addresses: Record<string, unknown>;
  blocked: { destination: string; port?: number | null; protocol?: string; count?: number }[];
}

export interface Network {
  id: string;
  name: string;
  cidr: string;
  shells: { id: string; address: string }[];
  createdAt?: string;
}

export interface Template {
  name: string;
  kind?: string;
  parent?: string | null;
  status?: string;
  versions?: Record<string, string>;
  sizeBytes?: number | null;
  contentHash?: string | null;
  env?: Record<string, string>;
  workdir?: string | null;
  createdAt?: string;
}

/** One step of a template build's stream. */
export type BuildEvent =
  | { type: "step"; index: number; total: number; name: string }
  | { type: "output"; data: string }
  | { type: "done" | "cached"; template: Template };

export interface UsageLine {
  key: string;
  seconds: number;
  vcpuSeconds: number;
  gibSeconds: number;
  /** Exact decimal, as text. */
  costUsd: string;
}

/** What shells ran and cost over a period, grouped (`from`/`to` are ISO 8601). */
export interface UsageReport {
  tenant: string;
  from: string;
  to: string;
  groupBy: string;
  owner: string | null;
  lines: UsageLine[];
  total: UsageLine;
  month: { costUsd: string; freeTierUsd: string; chargedUsd: string; budgetUsd: string | null; capReached: boolean } | null;
}

/** One line of the audit trail: who (`principal`) did what (`action`) to what (`target`), through
 * which door (`rest`, `cli`, `sdk`, `mcp`, `console`), and how it ended (`ok`, a state, an error code). */
export interface Event {
  id: number;
  at: string;
  shellId: string | null;
  principal: string;
  door: string;
  kind: string;
  action: string;
  outcome: string;
  target?: string | null;
  destructive?: boolean;
  requestId?: string | null;
  message?: string;
  details?: Record<string, unknown>;
}

/** The answer of an action: the shell's record after it and what the action returns. */
export interface ActionResult {
  shell: ShellInfo;
  result: Record<string, unknown>;
}
