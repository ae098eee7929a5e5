"""The JSON the SDK sends and the stream lines it reads, written once for the sync and async clients."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

from .models import (
    BuildDone,
    BuildEvent,
    BuildOutput,
    BuildStep,
    CommandEvent,
    CommandExit,
    CommandOutput,
    CommandStarted,
    Template,
    from_wire,
)

Json = dict[str, Any]


@dataclass(frozen=True)
class BucketMount:
    """Your S3-compatible bucket at ``path`` in the shell (container shells), served from the host:
    the credentials never enter the shell."""

    bucket: str
    endpoint: str
    """``http(s)://host[:port]`` of the S3-compatible server."""
    path: str
    access_key_id: str = ""
    secret_access_key: str = ""
    prefix: str = ""
    """Only the keys under this prefix."""
    read_only: bool = False
    credentials: str | None = None
    """The name of credentials stored with ``client.bucket_credentials.create`` (instead of keys)."""

    def __repr__(self) -> str:
        return f"BucketMount({self.bucket!r} at {self.path!r}, read_only={self.read_only})"

    def wire(self) -> Json:
        return {
            "bucket": self.bucket,
            "endpoint": self.endpoint,
            "path": self.path,
            "prefix": self.prefix,
            "read_only": self.read_only,
            "credentials": self.credentials
            if self.credentials is not None
            else {"access_key_id": self.access_key_id, "secret_access_key": self.secret_access_key},
        }


@dataclass(frozen=True)
class VolumeAttach:
    """One of your volumes at ``path`` in the shell (any number of shells read-only, one read-write)."""

    name: str
    path: str
    read_only: bool = False

    def wire(self) -> Json:
        return {"name": self.name, "path": self.path, "read_only": self.read_only}


class CreateOptions(TypedDict, total=False):
    """How to create a shell; every key is optional and ``None`` means the server's default."""

    runtime: str | None
    """``container`` (default), ``microvm`` or ``wasm``."""
    network: str | None
    """``sealed`` (default), ``localhost`` or ``internet``."""
    allow: Sequence[str] | None
    """With ``internet``: the only ``host:port`` destinations allowed (implies ``internet``)."""
    networks: Sequence[str] | None
    """Private networks to attach the shell to, by name."""
    shape: str | None
    """CPU and memory, such as ``s-1vcpu-512mb``."""
    template: str | None
    """The root filesystem, such as ``rust:1``; the language's preset when not given."""
    snapshot: str | None
    """Create the shell as a copy of this snapshot."""
    name: str | None
    env: Mapping[str, str] | None
    """Environment variables of every command in the shell."""
    labels: Mapping[str, str] | None
    """Free-form ``key: value`` tags; ``list(label="key=value")`` finds them."""
    idle_timeout_s: int | None
    """Pause the shell after this many seconds without activity (0: never; classes that can pause)."""
    secrets: Sequence[str] | None
    """Names of your secrets: each becomes a placeholder in the shell's environment, swapped for the
    value only in HTTPS requests to the secret's hosts (needs ``network="internet"``)."""
    timeout_s: int | None
    """The hard time-to-live: the shell ends this many seconds after its creation, whatever it does."""
    on_timeout: str | None
    """What the time-to-live does: ``kill`` (default, delete) or ``pause`` (pause, or stop keeping files)."""
    auto_resume: bool | None
    """Resume the paused shell when a request reaches one of its exposed ports (default: on where the
    class can pause)."""
    region: str | None
    """Where the shell runs, one of the regions ``info()["regions"]`` lists (default: the server's own)."""
    sync: Mapping[str, Any] | None
    """Mirror /workspace to your bucket: ``{"bucket", "endpoint", "prefix", "credentials":
    {"access_key_id", "secret_access_key"}}``, or ``"credentials": "<name>"`` of stored credentials
    (container and wasm shells; docs/storage.md)."""
    mounts: Sequence[BucketMount] | None
    """Your buckets, mounted from the host (container shells)."""
    volumes: Sequence[VolumeAttach] | None
    """Your volumes to attach (container shells)."""


def create_body(language: str | None, options: CreateOptions) -> Json:
    """The body of ``POST /v1/shells``. Without a language or a snapshot the shell is ``bash``."""
    body: Json = {k: v for k, v in options.items() if v is not None and k not in ("network", "allow")}
    if language is not None or "snapshot" not in body:
        body["language"] = language or "bash"
    allow = options.get("allow")
    network = options.get("network")
    if allow:
        body["network"] = {"mode": network or "internet", "allow": list(allow)}
    elif network is not None:
        body["network"] = network
    for key in ("networks", "secrets"):
        if key in body:
            body[key] = list(body[key])
    for key in ("mounts", "volumes"):
        if key in body:
            body[key] = [m.wire() for m in body[key]]
    for key in ("env", "labels", "sync"):
        if key in body:
            body[key] = dict(body[key])
    return body


def command_body(
    cmd: str | Sequence[str],
    args: Sequence[str] | None,
    *,
    env: Mapping[str, str] | None,
    cwd: str | None,
    stdin: str | bytes | None,
    timeout: float | None,
) -> Json:
    """The body of an exec. A lone string runs through ``/bin/sh -c``; a list, or a program with
    ``args``, runs without a shell."""
    if isinstance(cmd, str) and args is None:
        body: Json = {"command": cmd}
    else:
        body = {"cmd": [cmd, *(args or ())] if isinstance(cmd, str) else [*cmd, *(args or ())]}
    if env:
        body["env"] = dict(env)
    if cwd is not None:
        body["cwd"] = cwd
    if isinstance(stdin, bytes):
        body["stdin_b64"] = base64.b64encode(stdin).decode("ascii")
    elif stdin is not None:
        body["stdin"] = stdin
    if timeout is not None:
        body["timeout_s"] = timeout
    return body


COMMAND_EVENTS: dict[str, Callable[[Json], CommandEvent]] = {
    "started": lambda line: CommandStarted(pid=int(line["pid"])),
    "stdout": lambda line: CommandOutput(stream="stdout", data=str(line["data"])),
    "stderr": lambda line: CommandOutput(stream="stderr", data=str(line["data"])),
    "exit": lambda line: from_wire(CommandExit, line),
}
"""How each line type of an exec or run stream becomes an event."""

BUILD_EVENTS: dict[str, Callable[[Json], BuildEvent]] = {
    "step": lambda line: from_wire(BuildStep, line),
    "output": lambda line: BuildOutput(data=str(line["data"])),
    "done": lambda line: BuildDone(template=from_wire(Template, line["template"])),
    "cached": lambda line: BuildDone(template=from_wire(Template, line["template"]), cached=True),
}
"""How each line type of a template build stream becomes an event."""


def usage_params(
    start: datetime | str | None, end: datetime | str | None, group_by: str, tenant: str | None
) -> dict[str, str]:
    """The query of ``GET /v1/usage``: times as ISO 8601, what is not given left out."""
    given = {
        "from": start.isoformat() if isinstance(start, datetime) else start,
        "to": end.isoformat() if isinstance(end, datetime) else end,
        "group_by": group_by,
        "tenant": tenant,
    }
    return {k: v for k, v in given.items() if v is not None}


class Unset:
    """The default of an argument that was not given, where ``None`` has a meaning of its own."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset()
