// Running commands and code in a shell: `shell.commands.run(...)` and `shell.runCode(...)`.
import { Unavailable } from "./errors.js";
import type { RequestBody } from "./generated/openapi.js";
import type { CallOptions, HTTP } from "./http.js";
import { camel, type CommandEvent, type CommandResult } from "./models.js";

export interface OutputCallbacks {
  /** Receives standard output as it comes (the call then streams instead of waiting). */
  onStdout?: (data: string) => void;
  /** Receives standard error as it comes. */
  onStderr?: (data: string) => void;
}

export interface RunOptions extends CallOptions, OutputCallbacks {
  /** With a program (`cmd` a string): its arguments; the command then runs without a shell. */
  args?: readonly string[];
  env?: Record<string, string>;
  /** Working directory, absolute (default: the template's, usually `/workspace`). */
  cwd?: string;
  /** Sent to standard input: text, or bytes. */
  stdin?: string | Uint8Array;
  /** Seconds before the command is killed (`result.timedOut`); 600 by default. */
  timeoutS?: number;
}

export interface RunCodeOptions extends CallOptions, OutputCallbacks {
  /** The code's language (default: the shell's). */
  language?: NonNullable<RequestBody<"POST /v1/shells/{shell_id}/run">["language"]>;
  timeoutS?: number;
}

type ExecBody = RequestBody<"POST /v1/shells/{shell_id}/exec">;

/** The body of an exec. A lone string runs through `/bin/sh -c`; a list, or a program with `args`,
 * runs without a shell. */
export function commandBody(cmd: string | readonly string[], options: RunOptions): ExecBody {
  const body: ExecBody =
    typeof cmd === "string" && options.args === undefined
      ? { command: cmd }
      : { cmd: [...(typeof cmd === "string" ? [cmd] : cmd), ...(options.args ?? [])] };
  if (options.env) body.env = { ...options.env };
  if (options.cwd !== undefined) body.cwd = options.cwd;
  if (typeof options.stdin === "string") body.stdin = options.stdin;
  else if (options.stdin !== undefined) body.stdin_b64 = Buffer.from(options.stdin).toString("base64");
  if (options.timeoutS !== undefined) body.timeout_s = options.timeoutS;
  return body;
}

export class Commands {
  readonly #http: HTTP;
  readonly #path: string;

  constructor(http: HTTP, shellPath: string) {
    this.#http = http;
    this.#path = `${shellPath}/exec`;
  }

  /** Run a command to its end and return its output and exit code.
   *
   * `cmd` alone is a shell line (`"ls -l | wc -l"`); as a list, or with `args`, a program and its
   * arguments, run without a shell. With `onStdout` / `onStderr` the output also streams to them as
   * it comes. A non-zero exit is not an error: check `result.exitCode`.
   *
   * Rejects with `ShellNotFound`, `InvalidState` (not running), `CommandNotFound`, `InvalidRequest`, or
   * `Unavailable` when the connection failed or dropped before the command's end (never sent twice). */
  run(cmd: string | readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    return runToEnd(this.#http, this.#path, commandBody(cmd, options), options);
  }

  /** Start a command and yield its events as they come: `started`, `stdout`/`stderr`, then `exit`. */
  async *stream(cmd: string | readonly string[], options: RunOptions = {}): AsyncGenerator<CommandEvent> {
    for await (const line of this.#http.ndjson("POST", this.#path, { body: commandBody(cmd, options), signal: options.signal })) {
      yield camel<CommandEvent>(line);
    }
  }
}

/** Run an exec-like call (`exec` or `run`) to its end. Without callbacks the server collects the output
 * (`?wait=true`: one answer); with them the output streams to them. A stream that ends without its
 * `exit` line (the connection dropped) rejects: a short result is never returned as a whole one. */
export async function runToEnd(http: HTTP, path: string, body: unknown, options: RunOptions | RunCodeOptions): Promise<CommandResult> {
  const { onStdout, onStderr, signal } = options;
  if (!onStdout && !onStderr) {
    return camel<CommandResult>(await http.call("POST", path, { query: { wait: "true" }, body, unbounded: true, signal }));
  }
  const output = { stdout: [] as string[], stderr: [] as string[] };
  for await (const line of http.ndjson("POST", path, { body, signal })) {
    const event = camel<CommandEvent>(line);
    if (event.type === "stdout" || event.type === "stderr") {
      output[event.type].push(event.data);
      (event.type === "stdout" ? onStdout : onStderr)?.(event.data);
    } else if (event.type === "exit") {
      const { type: _, ...exit } = event;
      return { ...exit, stdout: output.stdout.join(""), stderr: output.stderr.join("") };
    }
  }
  throw new Unavailable("The command's output stream ended before it exited; the server may have restarted.");
}
