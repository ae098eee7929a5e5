# Generated from src/shells/sdk/_async/processes.py by scripts/unasync.py; edit that file and run the script.
"""Processes in a shell that outlive the call that started them: ``shell.processes``."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from ..models import CommandEvent, ProcessInfo, from_wire
from ..wire import COMMAND_EVENTS, Json, command_body
from .http import HTTP


class Processes:
    """``pid = (shell.processes.start("server.py", stdin=True)).pid``, then attach, write,
    signal or list them; each runs until it exits, is signalled or reaches its timeout."""

    def __init__(self, http: HTTP, shell_id: str) -> None:
        self._http = http
        self._path = f"/v1/shells/{shell_id}/processes"

    def start(
        self,
        cmd: str | Sequence[str],
        args: Sequence[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        user: str | None = None,
        tag: str | None = None,
        stdin: bool = False,
        timeout: float | None = None,
    ) -> ProcessInfo:
        """Start a command and return at once. ``cmd`` as in ``commands.run``; ``user`` runs it as a
        Linux user of the shell; ``tag`` names it; ``stdin`` keeps its input open for
        :meth:`send_stdin` until :meth:`close_stdin`. Output is there for whoever :meth:`attach`\\ es.

        Raises:
            ShellNotFound, InvalidState, CommandNotFound, InvalidRequest: as ``commands.run``.
            QuotaExceeded: the shell already runs its most processes.
        """
        body: Json = command_body(cmd, args, env=env, cwd=cwd, stdin=None, timeout=timeout)
        extra = {"user": user, "tag": tag, "stdin": stdin or None}
        body |= {k: v for k, v in extra.items() if v is not None}
        return from_wire(ProcessInfo, self._http.call("POST", self._path, body=body))

    def list(self) -> builtins.list[ProcessInfo]:
        answer = self._http.call("GET", self._path)
        return [from_wire(ProcessInfo, p) for p in answer["processes"]]

    @contextmanager
    def attach(self, pid: int) -> Iterator[Iterator[CommandEvent]]:
        """The process's events from now on: ``CommandStarted``, output, then its ``CommandExit``.
        Leaving the block stops listening; the process runs on.

        Raises:
            ProcessNotFound: no running process has that pid.
        """
        path = f"{self._path}/{pid}/attach"
        with self._http.ndjson("POST", path, COMMAND_EVENTS, body={}) as events:
            yield events

    def send_stdin(self, pid: int, data: str | bytes) -> None:
        """Write to the process's stdin (it was started with ``stdin=True``)."""
        content = data.encode() if isinstance(data, str) else data
        self._http.call("POST", f"{self._path}/{pid}/stdin", content=content)

    def close_stdin(self, pid: int) -> None:
        self._http.call("POST", f"{self._path}/{pid}/stdin/close")

    def signal(self, pid: int, signal: str = "TERM") -> None:
        """Send ``TERM`` (default), ``KILL``, ``INT``, ``HUP`` or ``QUIT`` to the process's group."""
        self._http.call("POST", f"{self._path}/{pid}/signal", body={"signal": signal})
