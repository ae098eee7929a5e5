"""JSON Schemas of the tools' arguments and structured results. The results are the REST API's wire
forms (see docs/sdk.md and docs/mcp.md), so the schemas name the fields an agent relies on and allow
the ones a newer server adds. Where a tool takes a REST body's fields, its arguments come from that
body's model (``control.bodies``, ``from_body``), so the two cannot drift."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ..control.bodies import ActionParams, CreateShellBody, NetworkPolicyBody, RunBody, TermBody
from ..domain.capabilities import Capability
from ..domain.isolation import Runtime

Schema = dict[str, Any]

DEFAULT_OUTPUT_CHARS = 16_000
MAX_OUTPUT_CHARS = 1_000_000
DEFAULT_READ_BYTES = 256 * 1024
MAX_READ_BYTES = 4 * 1024 * 1024


def obj(required: list[str] | None = None, *, closed: bool = True, **properties: Schema) -> Schema:
    """An object schema; ``closed`` refuses unknown properties (arguments), open ones allow them
    (results, which a newer server may extend)."""
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": not closed}
    if required:
        schema["required"] = required
    return schema


def string(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


def integer(description: str, **extra: Any) -> Schema:
    return {"type": "integer", "description": description, **extra}


def boolean(description: str) -> Schema:
    return {"type": "boolean", "description": description}


def string_map(description: str) -> Schema:
    return {"type": "object", "additionalProperties": {"type": "string"}, "description": description}


def from_body(model: type[BaseModel], required: list[str] | None = None, **extra: Schema) -> Schema:
    """A closed object schema of ``model``'s fields plus ``extra`` ones, self-contained (references
    inlined) and plain for an agent: no titles, and an optional field's ``null`` is left out."""
    schema = model.model_json_schema()
    properties = {name: _plain(prop, schema.get("$defs", {})) for name, prop in schema["properties"].items()}
    return obj(required, **(properties | extra))


def _plain(node: Any, defs: Schema) -> Any:
    if isinstance(node, list):
        return [_plain(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _plain(
            {**defs[node["$ref"].split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}, defs
        )
    options = [o for o in node.get("anyOf", []) if o != {"type": "null"}]
    if "anyOf" in node and len(options) == 1:
        rest = {k: v for k, v in node.items() if k != "anyOf" and not (k == "default" and v is None)}
        return _plain({**options[0], **rest}, defs)
    return {
        k: _plain(v, defs) for k, v in node.items() if k != "title" and not (k == "default" and v is None)
    }


SHELL_ID = string("The shell's id (sh_…), as shells_list or shells_create return it.")
OUTPUT_LIMIT = integer(
    f"Most characters of stdout and of stderr to return (default {DEFAULT_OUTPUT_CHARS}); the middle "
    "of longer output is cut out and marked.",
    minimum=100,
    maximum=MAX_OUTPUT_CHARS,
)
TIMEOUT = {"type": "number", "exclusiveMinimum": 0, "description": "Seconds before the run is killed (600)."}

NETWORK = from_body(NetworkPolicyBody)

SHELL = obj(
    ["id", "name", "state", "runtime", "language"],
    closed=False,
    id=string("The shell's id."),
    name=string("Its name (its id unless one was given)."),
    state=string("creating, running, paused, stopped, failed, lost or deleted."),
    state_reason=string("Why it is in that state, when there is a reason."),
    language=string("Its language preset."),
    runtime=string("Its isolation class: container, microvm or wasm."),
    network=obj(closed=False, mode=string("Network mode."), allow={"type": "array"}),
    shape=string("Its size: vCPUs and memory."),
    template=string("The template it was made from."),
    created_at=string("When it was created (ISO 8601)."),
)

COMMAND_RESULT = obj(
    ["stdout", "stderr", "exit_code"],
    closed=False,
    stdout=string("Standard output (its middle cut out past the limit, see stdout_cut)."),
    stderr=string("Standard error (likewise, see stderr_cut)."),
    exit_code=integer("The exit code; 128+N when signal N killed it."),
    signal={"type": ["integer", "null"], "description": "The signal that killed it, if one did."},
    timed_out=boolean("It ran past timeout_s and was killed."),
    truncated=boolean("The server stopped collecting output at its cap."),
    duration_ms={"type": "number", "description": "How long it ran."},
    stdout_cut=integer("Characters of stdout left out of this result (0: none)."),
    stderr_cut=integer("Characters of stderr left out of this result (0: none)."),
)

RUNTIMES_INPUT = obj()
RUNTIMES_OUTPUT = obj(
    ["runtimes"],
    closed=False,
    runtimes={
        "type": "array",
        "items": obj(
            ["language", "runtime", "available"],
            closed=False,
            language=string("A language preset."),
            runtime=string("An isolation class."),
            available=boolean("shells_create can make this combination on this server."),
            version=string("The language's version there."),
            notes=string("Why it is not available, or what to know."),
        ),
    },
)

LIST_INPUT = obj(
    state=string("Only shells in this state (running, paused, stopped, failed, …)."),
    runtime=string("Only shells of this isolation class.", enum=[r.value for r in Runtime]),
    label=string("Only shells with this label: key or key=value."),
)
LIST_OUTPUT = obj(["shells"], closed=False, shells={"type": "array", "items": SHELL})

CREATE_INPUT = from_body(CreateShellBody)
SECRETS_INPUT = obj()
SECRETS_OUTPUT = obj(
    ["secrets"],
    closed=False,
    secrets={
        "type": "array",
        "items": {"type": "object"},
        "description": "name, hosts, header, version of each secret (never a value).",
    },
)
VOLUMES_OUTPUT = obj(
    ["volumes"],
    closed=False,
    volumes={
        "type": "array",
        "items": {"type": "object"},
        "description": "name, size_gib, used_bytes and attached (shell_id, read_only) of each volume.",
    },
)
BUCKET_CREDENTIALS_OUTPUT = obj(
    ["bucket_credentials"],
    closed=False,
    bucket_credentials={
        "type": "array",
        "items": {"type": "object"},
        "description": "name, access_key_id and created_at of each (never a secret).",
    },
)
SHELL_OUTPUT = obj(["shell"], closed=False, shell=SHELL)

DELETE_INPUT = obj(["shell_id"], shell_id=SHELL_ID)
DELETE_OUTPUT = obj(["deleted"], closed=False, deleted=string("The id of the deleted shell."))

ACTION_INPUT = from_body(
    ActionParams,
    ["shell_id", "action"],
    shell_id=SHELL_ID,
    action=string(
        "restart; snapshot (save the files; name optional); logs (the console log); stop "
        "(DESTRUCTIVE: ends every process); start; reinstall_os (DESTRUCTIVE: fresh OS files, "
        "/workspace kept); wipe_state (DESTRUCTIVE: fresh OS files and an empty /workspace); pause "
        "and resume (memory kept; microvm); fork (count running copies; microvm).",
        enum=[c.value for c in Capability],
    ),
)
ACTION_OUTPUT = obj(
    ["action", "destructive", "shell", "result"],
    closed=False,
    action=string("The action that ran."),
    destructive=boolean("It ended processes or replaced files that cannot be brought back."),
    shell=SHELL,
    result=obj(closed=False),
)

TERM_INPUT = from_body(TermBody, ["shell_id"], shell_id=SHELL_ID)
TERM_OUTPUT = obj(
    ["id", "token", "expires_at", "url"],
    closed=False,
    id=string("Names the credential, to revoke it."),
    token=string('The credential (term_…): send {"type": "auth", "token": …} first on the WebSocket.'),
    expires_at=string("When it stops working (ISO 8601)."),
    url=string("The terminal's WebSocket URL."),
)

EXEC_INPUT = obj(
    ["shell_id"],
    shell_id=SHELL_ID,
    command=string("A shell command line, run by /bin/sh -c (pipes and redirections work)."),
    argv={
        "type": "array",
        "items": {"type": "string"},
        "minItems": 1,
        "description": "Instead of command: a program and its arguments, run without a shell.",
    },
    cwd=string("Working directory (default: the template's, usually /workspace)."),
    env=string_map("Extra environment variables."),
    stdin=string("Text sent to the command's standard input."),
    timeout_s=TIMEOUT,
    max_output_chars=OUTPUT_LIMIT,
)

RUN_CODE_INPUT = from_body(RunBody, ["shell_id", "code"], shell_id=SHELL_ID, max_output_chars=OUTPUT_LIMIT)

READ_INPUT = obj(
    ["shell_id", "path"],
    shell_id=SHELL_ID,
    path=string("Absolute path, or relative to /workspace."),
    max_bytes=integer(
        f"Most bytes to return (default {DEFAULT_READ_BYTES}).", minimum=1, maximum=MAX_READ_BYTES
    ),
    encoding=string("text (UTF-8, the default) or base64 (for binary files).", enum=["text", "base64"]),
)
READ_OUTPUT = obj(
    ["path", "content", "encoding", "size", "truncated"],
    closed=False,
    path=string("The path read."),
    content=string("The file's content (its first max_bytes bytes)."),
    encoding=string("text or base64."),
    size=integer("Bytes returned."),
    truncated=boolean("The file is longer than max_bytes."),
)

WRITE_INPUT = obj(
    ["shell_id", "path", "content"],
    shell_id=SHELL_ID,
    path=string("Absolute path, or relative to /workspace; its directory must exist."),
    content=string("The whole new content."),
    encoding=string("text (written as UTF-8, the default) or base64.", enum=["text", "base64"]),
    mode=string("Permission bits in octal (default 644).", pattern="^[0-7]{1,4}$"),
)
WRITE_OUTPUT = obj(
    ["path", "size"], closed=False, path=string("The path written."), size=integer("Bytes written.")
)

LIST_FILES_INPUT = obj(["shell_id"], shell_id=SHELL_ID, path=string("A directory (default /workspace)."))
ENTRY = obj(
    ["name", "kind", "size"],
    closed=False,
    path=string("Its path."),
    name=string("Its name."),
    kind=string("file, dir, symlink or other."),
    size=integer("Bytes."),
    mode=integer("Permission bits."),
    mtime={"type": "number", "description": "Last change, seconds since the epoch."},
    link_target={"type": ["string", "null"], "description": "Where a symlink points."},
)
LIST_FILES_OUTPUT = obj(
    ["path", "entries"],
    closed=False,
    path=string("The directory."),
    entries={"type": "array", "items": ENTRY},
)

METRICS_INPUT = obj(
    ["shell_id"],
    shell_id=SHELL_ID,
    seconds=integer("How far back to look (default 300; samples are kept for up to 12 hours).", minimum=1),
)
SAMPLE = obj(
    ["at"],
    closed=False,
    at={"type": "number", "description": "Unix seconds."},
    cpu_percent={"type": ["number", "null"], "description": "Of one core, since the previous sample."},
    memory_bytes={"type": ["integer", "null"], "description": "Memory in use."},
    disk_bytes={"type": ["integer", "null"], "description": "Disk in use."},
)
METRICS_OUTPUT = obj(
    ["shell_id", "samples"],
    closed=False,
    shell_id=string("The shell."),
    interval_s={"type": "number", "description": "Seconds between samples."},
    samples={"type": "array", "items": SAMPLE},
)
