# Generated from src/shells/sdk/_async/commands.py by scripts/unasync.py; edit that file and run the script.
"""Running commands and code in a shell: ``shell.commands`` and the helpers ``run_code`` shares."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from ...domain.errors import Unavailable
from ..models import CommandEvent, CommandExit, CommandOutput, CommandResult, from_wire
from ..wire import COMMAND_EVENTS, Json, command_body
from .http import HTTP

OutputCallback = Callable[[str], object]


class Commands:
    """Commands in one shell: ``shell.commands.run("ls -l")``."""

    def __init__(self, http: HTTP, shell_id: str) -> None:
        self._http = http
        self._path = f"/v1/shells/{shell_id}/exec"

    def run(
        self,
        cmd: str | Sequence[str],
        args: Sequence[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stdin: str | bytes | None = None,
        timeout: float | None = None,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
    ) -> CommandResult:
        """Run a command to the end and return its output and exit code.

        ``cmd`` alone is a shell string (``"ls -l | wc -l"``); as a list, or with ``args``, it is a
        program and its arguments, run without a shell. ``timeout`` (seconds, default 600) kills the
        command and sets ``result.timed_out``. A non-zero exit is not an exception: check
        ``result.exit_code``. ``on_stdout`` / ``on_stderr`` also receive the output as it comes.

        Raises:
            ShellNotFound: no such shell (or not yours).
            InvalidState: the shell is not running.
            CommandNotFound: the program does not exist in the shell.
            InvalidRequest: a bad argument (empty command, relative ``cwd``, ...).
            Unavailable: the connection failed; the command is never sent twice.
        """
        body = command_body(cmd, args, env=env, cwd=cwd, stdin=stdin, timeout=timeout)
        return run_to_end(self._http, self._path, body, on_stdout, on_stderr)

    @contextmanager
    def stream(
        self,
        cmd: str | Sequence[str],
        args: Sequence[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stdin: str | bytes | None = None,
        timeout: float | None = None,
    ) -> Iterator[Iterator[CommandEvent]]:
        """Start a command and hand over its events as they happen: ``CommandStarted``, then
        ``CommandOutput`` pieces, then one ``CommandExit``. Arguments as for :meth:`run`.

        Raises:
            The errors of :meth:`run`, when the command starts; an error inside the shell while it
            runs (its agent went away) is raised from the iteration.
        """
        body = command_body(cmd, args, env=env, cwd=cwd, stdin=stdin, timeout=timeout)
        with self._http.ndjson("POST", self._path, COMMAND_EVENTS, body=body) as events:
            yield events


def run_to_end(
    http: HTTP,
    path: str,
    body: Json,
    on_stdout: OutputCallback | None,
    on_stderr: OutputCallback | None,
) -> CommandResult:
    """Run an exec-like call (``exec`` or ``run``) to its end. Without callbacks the server collects
    the output (``?wait=true``: one answer); with them the output is streamed to them."""
    if on_stdout is None and on_stderr is None:
        answer = http.call("POST", path, params={"wait": "true"}, body=body, unbounded=True)
        return from_wire(CommandResult, answer)
    output: dict[str, list[str]] = {"stdout": [], "stderr": []}
    callbacks = {"stdout": on_stdout, "stderr": on_stderr}
    with http.ndjson("POST", path, COMMAND_EVENTS, body=body) as events:
        for event in events:
            if isinstance(event, CommandOutput):
                output[event.stream].append(event.data)
                callback = callbacks[event.stream]
                if callback is not None:
                    callback(event.data)
            elif isinstance(event, CommandExit):
                return CommandResult(
                    stdout="".join(output["stdout"]),
                    stderr="".join(output["stderr"]),
                    **dataclasses.asdict(event),
                )
    raise Unavailable("The command's output stream ended before it exited; the server may have restarted.")
