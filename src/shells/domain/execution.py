"""Value types for running a command in a shell and for its file tree.

These cross every layer (guest agent client → runtime → control → doors), so they are plain frozen
dataclasses with no behaviour beyond validation.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .errors import InvalidRequest
from .limits import EXEC_OUTPUT_CAP_BYTES, WAIT_OUTPUT_CAP_BYTES

DEFAULT_EXEC_TIMEOUT_S = 600.0
MAX_EXEC_TIMEOUT_S = 24 * 3600.0
MAX_ARGV_BYTES = 256 * 1024
MAX_ENV_ENTRIES = 4096


def check_env(env: dict[str, str]) -> None:
    """The rule for environment variables wherever they are given (a create, an exec): what
    ``execve`` can pass. Checked when given, so a shell never holds an env that fails every exec."""
    if len(env) > MAX_ENV_ENTRIES:
        raise InvalidRequest(f"'env' has more than {MAX_ENV_ENTRIES} entries.", {"field": "env"})
    for key, value in env.items():
        if not key or "=" in key or "\0" in key:
            raise InvalidRequest(
                f"'env' name {key!r} is invalid: names may not be empty or hold '=' or NUL.",
                {"field": "env"},
            )
        if "\0" in value:
            raise InvalidRequest(f"'env' value of {key!r} holds a NUL byte.", {"field": "env"})


@dataclass(frozen=True)
class WindowSize:
    """A terminal's size in characters."""

    cols: int
    rows: int

    def __post_init__(self) -> None:
        if not (0 < self.cols <= MAX_WINDOW and 0 < self.rows <= MAX_WINDOW):
            raise InvalidRequest(f"A terminal's 'cols' and 'rows' must be from 1 to {MAX_WINDOW}.")


MAX_WINDOW = 4096


@dataclass(frozen=True)
class ExecSpec:
    """One command to run. Exactly one of ``argv`` or ``command`` (run by ``/bin/sh -c``) is set.

    ``cwd`` None means the shell's working directory: its template's ``workdir`` (/workspace unless
    the template says otherwise)."""

    argv: tuple[str, ...] | None = None
    command: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    stdin: bytes = b""
    timeout_s: float = DEFAULT_EXEC_TIMEOUT_S
    output_cap_bytes: int = EXEC_OUTPUT_CAP_BYTES
    user: str | None = None
    """The Linux user of the shell to run as (a name or uid, optionally ``:group``, as an image's
    ``User`` is written; its uid, gid, groups and HOME apply); None runs as root."""
    stdin_stream: AsyncIterable[bytes | WindowSize] | None = field(default=None, compare=False)
    """Input that arrives while the command runs (after ``stdin``); its end closes the command's
    stdin. A ``WindowSize`` in it resizes the terminal of a ``pty`` command. None: stdin is
    ``stdin`` alone (or nothing)."""
    pty: WindowSize | None = None
    """Run on a pseudo-terminal of this size (one output stream, ``stdout``; stdin always open)."""
    keep: bool = False
    """The process outlives this call: when it ends early the process is detached, not killed, and
    the agent lists it and lets a later call attach to it (``control.processes``)."""
    tag: str | None = None
    """A name the agent lists a kept process under."""

    def __post_init__(self) -> None:
        if (self.argv is None) == (self.command is None):
            raise InvalidRequest(
                "Give exactly one of 'cmd' (a list of arguments) or 'command' (a shell string)."
            )
        if self.argv is not None:
            if not self.argv or not self.argv[0]:
                raise InvalidRequest("'cmd' must be a non-empty list whose first item names the program.")
            if sum(len(a.encode()) for a in self.argv) > MAX_ARGV_BYTES:
                raise InvalidRequest(f"'cmd' is larger than {MAX_ARGV_BYTES} bytes; pass big data on stdin.")
            if any("\0" in a for a in self.argv):
                raise InvalidRequest("'cmd' arguments may not contain NUL bytes.")
        if self.command is not None and ("\0" in self.command or not self.command.strip()):
            raise InvalidRequest("'command' must be a non-empty shell string without NUL bytes.")
        check_env(self.env)
        if self.cwd is not None and (not self.cwd.startswith("/") or "\0" in self.cwd):
            raise InvalidRequest("'cwd' must be an absolute path inside the shell, such as /workspace.")
        if not 0 < self.timeout_s <= MAX_EXEC_TIMEOUT_S:
            raise InvalidRequest(f"'timeout_s' must be between 0 and {MAX_EXEC_TIMEOUT_S:.0f} seconds.")
        if self.output_cap_bytes <= 0:
            raise InvalidRequest("'output_cap_bytes' must be positive.")
        if self.user is not None and not is_user_name(self.user):
            raise InvalidRequest(f"'user' {self.user!r} is not a Linux user name.", {"field": "user"})

    @property
    def effective_argv(self) -> tuple[str, ...]:
        if self.argv is not None:
            return self.argv
        assert self.command is not None
        return ("/bin/sh", "-c", self.command)


def is_user_name(name: str) -> bool:
    """A portable Linux user name (what useradd accepts by default)."""
    return 0 < len(name) <= 32 and name[0] != "-" and all(c.isalnum() or c in "._-" for c in name)


Stream = Literal["stdout", "stderr"]


@dataclass(frozen=True)
class OutputChunk:
    """A piece of a running command's output, in the order the agent read it."""

    stream: Stream
    data: bytes


@dataclass(frozen=True)
class ExecStarted:
    """The command was spawned (always the first event): a door may start answering now."""

    pid: int


@dataclass(frozen=True)
class ExecExit:
    """How a command ended. ``exit_code`` follows the shell convention: 128+N when killed by signal N."""

    exit_code: int
    signal: int | None = None
    timed_out: bool = False
    truncated: bool = False
    duration_ms: float = 0.0

    def to_public(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "signal": self.signal,
            "timed_out": self.timed_out,
            "truncated": self.truncated,
            "duration_ms": self.duration_ms,
        }


ExecEvent = ExecStarted | OutputChunk | ExecExit


@dataclass(frozen=True)
class ExecResult:
    """A finished command with its whole (possibly truncated) output."""

    stdout: bytes
    stderr: bytes
    exit: ExecExit

    def to_public(self) -> dict[str, Any]:
        """The wire form of a command run to its end (``?wait=true``, the MCP exec tools)."""
        return {
            "stdout": self.stdout.decode(errors="replace"),
            "stderr": self.stderr.decode(errors="replace"),
            **self.exit.to_public(),
        }


class OutputCap:
    """A command's output counted against a cap (stdout and stderr together, as the agent counts):
    what fits is kept, the rest dropped, and the exit then says ``truncated``."""

    def __init__(self, cap: int) -> None:
        self._room = cap

    def keep(self, data: bytes) -> bytes:
        """The part of ``data`` still within the cap (all of it, some, or none)."""
        kept = data[: max(self._room, 0)]
        self._room -= len(data)
        return kept

    def mark(self, exit_: ExecExit) -> ExecExit:
        """``exit_``, marked ``truncated`` if any output was dropped."""
        return replace(exit_, truncated=True) if self._room < 0 else exit_


async def collect(events: AsyncIterator[ExecEvent], cap: int = WAIT_OUTPUT_CAP_BYTES) -> ExecResult:
    """Run a command's event stream to its end, keeping its first ``cap`` bytes of output; past it
    output is dropped and the exit says ``truncated``, so an answer given whole never holds more
    than the cap."""
    out, err = bytearray(), bytearray()
    output = OutputCap(cap)
    exit_ = ExecExit(exit_code=-1)
    async for ev in events:
        if isinstance(ev, ExecExit):
            exit_ = ev
        elif isinstance(ev, OutputChunk):
            (out if ev.stream == "stdout" else err).extend(output.keep(ev.data))
    return ExecResult(stdout=bytes(out), stderr=bytes(err), exit=output.mark(exit_))


FileKind = Literal["file", "dir", "symlink", "other"]


@dataclass(frozen=True)
class FileEntry:
    """One entry of a directory listing (or a ``stat``), as seen from inside the shell."""

    path: str
    name: str
    kind: FileKind
    size: int
    mode: int
    mtime: float
    link_target: str | None = None
    metadata: dict[str, str] | None = None
    """Extended attributes under a prefix the caller asked for (``user.e2b.`` for the E2B door),
    without it; None when not asked."""


FileChangeKind = Literal["create", "write", "remove", "rename", "chmod"]
FILE_CHANGES: frozenset[str] = frozenset({"create", "write", "remove", "rename", "chmod"})
MAX_PATH = 4096


@dataclass(frozen=True)
class FileChange:
    """One change in a watched directory: ``name`` is relative to it (``sub/file`` when recursive)."""

    name: str
    kind: FileChangeKind


@dataclass(frozen=True)
class KeptProcess:
    """A running process an agent keeps (``ExecSpec.keep``), as it lists it."""

    pid: int
    tag: str | None
    argv: tuple[str, ...]
    cwd: str
    user: str | None
    pty: bool
    attached: bool
