"""The tools: name, description, schemas, honest annotations, and what each does through a
``Gateway``. Both transports serve exactly this table."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import mcp_types as types

from ..domain.capabilities import DESTRUCTIVE, Capability
from ..domain.errors import InvalidRequest
from . import schemas as s
from .gateway import Gateway, Json
from .shaping import cut, mask, ok

Args = dict[str, Any]
Run = Callable[[Gateway, Args], Awaitable[types.CallToolResult]]


@dataclass(frozen=True)
class Hints:
    """A tool's annotations: what it does to the world, as MCP clients read them."""

    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool
    """May reach beyond Shells: commands run in a shell whose network may be the internet."""


READS = Hints(read_only=True, destructive=False, idempotent=True, open_world=False)
ADDS = Hints(read_only=False, destructive=False, idempotent=False, open_world=False)
REPLACES = Hints(read_only=False, destructive=True, idempotent=True, open_world=False)
"""Destroys what was there, and doing it twice does no more (delete, overwrite a file)."""
ACTS = Hints(read_only=False, destructive=True, idempotent=False, open_world=False)
RUNS = Hints(read_only=False, destructive=True, idempotent=False, open_world=True)
"""Arbitrary code: it may delete files in the shell, and reach the internet if the shell may."""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    input_schema: s.Schema
    output_schema: s.Schema
    hints: Hints
    run: Run

    @property
    def read_only(self) -> bool:
        return self.hints.read_only

    def to_mcp(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.input_schema,
            output_schema=self.output_schema,
            annotations=types.ToolAnnotations(
                title=self.title,
                read_only_hint=self.hints.read_only,
                destructive_hint=self.hints.destructive,
                idempotent_hint=self.hints.idempotent,
                open_world_hint=self.hints.open_world,
            ),
        )

    def target(self, args: Args) -> str | None:
        """The shell a call is about, for the audit trail."""
        shell_id = args.get("shell_id")
        return shell_id if isinstance(shell_id, str) else None


# shells ------------------------------------------------------------------------------------------


def _line(shell: Json) -> str:
    network = shell.get("network") or {}
    reason = f" ({shell['state_reason']})" if shell.get("state_reason") else ""
    return (
        f"{shell['id']}  {shell['name']}  {shell['state']}{reason}  {shell['language']}/{shell['runtime']}"
        f"  network={network.get('mode', '?')}  shape={shell.get('shape', '?')}"
        f"  region={shell.get('region', '?')} node={shell.get('node', '?')}"
    )


async def _runtimes(gw: Gateway, args: Args) -> types.CallToolResult:
    rows = await gw.runtimes()
    lines = [
        f"{r['language']:<7} {r['runtime']:<10} "
        + (f"available {r.get('version') or ''}".rstrip() if r["available"] else "unavailable")
        + (f" ({r['notes']})" if r.get("notes") else "")
        for r in rows
    ]
    return ok("\n".join(lines), {"runtimes": rows})


async def _list(gw: Gateway, args: Args) -> types.CallToolResult:
    shells = await gw.list_shells({k: str(v) for k, v in args.items()})
    text = "\n".join(_line(sh) for sh in shells) if shells else "No shells."
    return ok(text, {"shells": shells})


async def _volumes(gw: Gateway, args: Args) -> types.CallToolResult:
    found = await gw.list_volumes()
    lines = [f"{v['name']}: {v['size_gib']} GiB, {len(v['attached'])} shell(s)" for v in found]
    return ok("\n".join(lines) if lines else "No volumes.", {"volumes": found})


async def _bucket_credentials(gw: Gateway, args: Args) -> types.CallToolResult:
    found = await gw.list_bucket_credentials()
    lines = [f"{c['name']}: key {c['access_key_id']}" for c in found]
    return ok("\n".join(lines) if lines else "No stored bucket credentials.", {"bucket_credentials": found})


async def _secrets(gw: Gateway, args: Args) -> types.CallToolResult:
    found = await gw.list_secrets()
    lines = [f"{s['name']}: for {', '.join(s['hosts'])}" for s in found]
    return ok("\n".join(lines) if lines else "No secrets.", {"secrets": found})


async def _create(gw: Gateway, args: Args) -> types.CallToolResult:
    shell = await gw.create_shell(args)
    return ok(f"Created and started {_line(shell)}", {"shell": shell})


async def _delete(gw: Gateway, args: Args) -> types.CallToolResult:
    await gw.delete_shell(args["shell_id"])
    text = (
        f"Deleted shell {args['shell_id']} (destructive: its processes and files are gone; "
        "its snapshots stay)."
    )
    return ok(text, {"deleted": args["shell_id"]})


CONSEQUENCES = {
    Capability.STOP: "every process in the shell was ended; its files stay until start",
    Capability.REINSTALL_OS: "the OS files were replaced by the template's; /workspace was kept",
    Capability.WIPE_STATE: "the OS files and /workspace were replaced by fresh, empty ones",
}
"""What each destructive action (``domain.capabilities.DESTRUCTIVE``) did, as the result says it."""


async def _action(gw: Gateway, args: Args) -> types.CallToolResult:
    action = str(args["action"])
    params = {k: v for k, v in args.items() if k not in ("shell_id", "action")}
    answer = await gw.act(args["shell_id"], action, params)
    shell, result = answer["shell"], answer["result"]
    destructive = action in DESTRUCTIVE
    lines = [f"{action} on {shell['id']}: done; the shell is {shell['state']}."]
    if destructive:
        lines.append(f"DESTRUCTIVE: {CONSEQUENCES[Capability(action)]}.")
    if "snapshot" in result:
        lines.append(f"Snapshot {result['snapshot']['id']}: shells_create snapshot= makes a shell from it.")
    if "shells" in result:
        lines.append("Copies: " + ", ".join(child["id"] for child in result["shells"]))
    if "logs" in result:
        lines.append(cut(str(result["logs"]), s.DEFAULT_OUTPUT_CHARS, "the log")[0])
    structured = {"action": action, "destructive": destructive, "shell": shell, "result": result}
    return ok("\n".join(lines), structured)


async def _term(gw: Gateway, args: Args) -> types.CallToolResult:
    cred = await gw.mint_terminal(args["shell_id"], {k: v for k, v in args.items() if k == "ttl_s"})
    text = (
        f"Terminal credential {cred['id']} for {args['shell_id']}, valid until {cred['expires_at']}: "
        f'open a WebSocket to {cred["url"]} and send {{"type": "auth", "token": <token>}} first. '
        f"Token {mask(cred['token'])} (masked here; the structured result holds it whole)."
    )
    return ok(text, cred)


# inside ------------------------------------------------------------------------------------------


def _command_result(answer: Json, limit: int) -> types.CallToolResult:
    result = dict(answer)
    result["stdout"], result["stdout_cut"] = cut(answer.get("stdout", ""), limit, "stdout")
    result["stderr"], result["stderr_cut"] = cut(answer.get("stderr", ""), limit, "stderr")
    status = f"exit code {result['exit_code']}"
    if result.get("timed_out"):
        status += " (timed out and killed)"
    elif result.get("signal"):
        status += f" (killed by signal {result['signal']})"
    parts = [f"{status}, {result.get('duration_ms', 0):.0f} ms"]
    for stream in ("stdout", "stderr"):
        if result[stream]:
            parts.append(f"--- {stream} ---\n{result[stream]}")
    if result.get("truncated"):
        parts.append("(the server stopped collecting output at its cap)")
    return ok("\n".join(parts), result)


def _limit(args: Args) -> int:
    return int(args.get("max_output_chars", s.DEFAULT_OUTPUT_CHARS))


async def _exec(gw: Gateway, args: Args) -> types.CallToolResult:
    if ("command" in args) == ("argv" in args):
        raise InvalidRequest("Give exactly one of 'command' (a shell line) or 'argv' (a list).")
    body: Json = {"command": args["command"]} if "command" in args else {"cmd": args["argv"]}
    body |= {k: args[k] for k in ("cwd", "env", "stdin", "timeout_s") if k in args}
    return _command_result(await gw.exec(args["shell_id"], body), _limit(args))


async def _run_code(gw: Gateway, args: Args) -> types.CallToolResult:
    body: Json = {k: args[k] for k in ("code", "language", "timeout_s") if k in args}
    return _command_result(await gw.run_code(args["shell_id"], body), _limit(args))


async def _read(gw: Gateway, args: Args) -> types.CallToolResult:
    limit = int(args.get("max_bytes", s.DEFAULT_READ_BYTES))
    data = await gw.read_file(args["shell_id"], args["path"], limit + 1)
    truncated = len(data) > limit
    data = data[:limit]
    encoding = args.get("encoding", "text")
    content = base64.b64encode(data).decode() if encoding == "base64" else data.decode(errors="replace")
    text = content + (f"\n…[cut after {limit} bytes; ask with a larger max_bytes]" if truncated else "")
    structured = {
        "path": args["path"],
        "content": content,
        "encoding": encoding,
        "size": len(data),
        "truncated": truncated,
    }
    return ok(text, structured)


async def _write(gw: Gateway, args: Args) -> types.CallToolResult:
    content = str(args["content"])
    if args.get("encoding", "text") == "base64":
        try:
            data = base64.b64decode(content, validate=True)
        except binascii.Error:
            raise InvalidRequest("'content' is not valid base64.", {"field": "content"}) from None
    else:
        data = content.encode()
    answer = await gw.write_file(args["shell_id"], args["path"], data, int(args.get("mode", "644"), 8))
    return ok(f"Wrote {answer['size']} bytes to {answer['path']}.", answer)


async def _list_files(gw: Gateway, args: Args) -> types.CallToolResult:
    answer = await gw.list_files(args["shell_id"], args.get("path", "/workspace"))
    lines = [f"{e['kind']:<7} {e['size']:>10}  {e['name']}" for e in answer["entries"]]
    return ok("\n".join(lines) or f"{answer['path']} is empty.", answer)


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


async def _metrics(gw: Gateway, args: Args) -> types.CallToolResult:
    seconds = int(args.get("seconds", 300))
    answer = await gw.metrics(args["shell_id"], time.time() - seconds)
    samples = answer["samples"]
    if not samples:
        text = (
            f"No samples of {args['shell_id']} in the last {seconds} s (running or paused shells are sampled."
        )
        return ok(text.rstrip(".") + " every few seconds).", answer)
    last = samples[-1]
    cpus = [x["cpu_percent"] for x in samples if x.get("cpu_percent") is not None]
    memory = [x["memory_bytes"] for x in samples if x.get("memory_bytes") is not None]
    parts = [f"{len(samples)} samples over the last {seconds} s."]
    if last.get("cpu_percent") is not None:
        parts.append(f"CPU now {last['cpu_percent']:.1f} % of a core")
    if cpus:
        parts.append(f"average {sum(cpus) / len(cpus):.1f} %, peak {max(cpus):.1f} %.")
    parts.append(f"Memory now {_mib(last.get('memory_bytes'))}, peak {_mib(max(memory, default=None))}.")
    parts.append(f"Disk {_mib(last.get('disk_bytes'))}.")
    return ok(" ".join(parts), answer)


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "shells_runtimes",
        "List runtimes",
        "Which language presets each isolation class (container, microvm, wasm) can run on this "
        "server, with versions, or why not: what shells_create accepts.",
        s.RUNTIMES_INPUT, s.RUNTIMES_OUTPUT, READS, _runtimes,
    ),
    ToolSpec(
        "shells_list",
        "List shells",
        "Every shell you can see (your own and those shared with you), optionally filtered.",
        s.LIST_INPUT, s.LIST_OUTPUT, READS, _list,
    ),
    ToolSpec(
        "shells_secrets_list",
        "List secrets",
        "The secrets a shell can be created with (shells_create secrets=[name]), with the hosts each "
        "may be sent to. Values are never shown: the host adds them to HTTPS requests at egress.",
        s.SECRETS_INPUT, s.SECRETS_OUTPUT, READS, _secrets,
    ),
    ToolSpec(
        "shells_volumes_list",
        "List volumes",
        "The tenant's volumes a shell can be created with (shells_create volumes=[{name, path, "
        "read_only}]): any number of shells read-only, one read-write; each outlives its shells.",
        s.SECRETS_INPUT, s.VOLUMES_OUTPUT, READS, _volumes,
    ),
    ToolSpec(
        "shells_bucket_credentials_list",
        "List stored bucket credentials",
        "The tenant's stored S3 key pairs a bucket mount or sync can name instead of keys "
        "(shells_create mounts=[{..., credentials: name}] or sync={..., credentials: name}). Names "
        "and key ids only: secrets are never shown.",
        s.SECRETS_INPUT, s.BUCKET_CREDENTIALS_OUTPUT, READS, _bucket_credentials,
    ),
    ToolSpec(
        "shells_create",
        "Create a shell",
        "Create and start a sandbox: a language preset (or template), an isolation class, a network "
        "mode (sealed by default) and a shape. Returns when it is running.",
        s.CREATE_INPUT, s.SHELL_OUTPUT, ADDS, _create,
    ),
    ToolSpec(
        "shells_delete",
        "Delete a shell",
        "Delete a shell and everything in it (DESTRUCTIVE; its snapshots stay).",
        s.DELETE_INPUT, s.DELETE_OUTPUT, REPLACES, _delete,
    ),
    ToolSpec(
        "shells_action",
        "Act on a shell",
        "Run one lifecycle action. stop, reinstall_os and wipe_state are DESTRUCTIVE (processes or "
        "files are gone for good) and say so in the result; pause, resume and fork need a class "
        "that can (microvm).",
        s.ACTION_INPUT, s.ACTION_OUTPUT, ACTS, _action,
    ),
    ToolSpec(
        "shells_term",
        "Open a terminal credential",
        "Mint a short-lived credential for the shell's interactive terminal (a WebSocket). The token "
        "is masked in the text and whole in the structured result.",
        s.TERM_INPUT, s.TERM_OUTPUT, ADDS, _term,
    ),
    ToolSpec(
        "shells_exec",
        "Run a command",
        "Run a command in a running shell to its end and return stdout, stderr and the exit code "
        "(a non-zero exit is a result, not an error). Long output is cut in the middle, marked.",
        s.EXEC_INPUT, s.COMMAND_RESULT, RUNS, _exec,
    ),
    ToolSpec(
        "shells_run_code",
        "Run a code snippet",
        "Run source code with its language's interpreter or compiler (python, node, bash, go, rust) "
        "and return stdout, stderr and the exit code; a compile error is output, not a tool error.",
        s.RUN_CODE_INPUT, s.COMMAND_RESULT, RUNS, _run_code,
    ),
    ToolSpec(
        "shells_files_read",
        "Read a file",
        "Read a file of a running shell (text, or base64 for binary files).",
        s.READ_INPUT, s.READ_OUTPUT, READS, _read,
    ),
    ToolSpec(
        "shells_files_write",
        "Write a file",
        "Create or replace a file in a running shell (replacing overwrites it). It appears whole or "
        "not at all.",
        s.WRITE_INPUT, s.WRITE_OUTPUT, REPLACES, _write,
    ),
    ToolSpec(
        "shells_files_list",
        "List a directory",
        "The entries of a directory of a running shell.",
        s.LIST_FILES_INPUT, s.LIST_FILES_OUTPUT, READS, _list_files,
    ),
    ToolSpec(
        "shells_metrics",
        "Read a shell's metrics",
        "The shell's CPU, memory and disk over the last minutes (sampled on the host every few "
        "seconds): whether a job is still busy, how much memory it needs, how full the disk is.",
        s.METRICS_INPUT, s.METRICS_OUTPUT, READS, _metrics,
    ),
)  # fmt: skip
BY_NAME = {t.name: t for t in TOOLS}
