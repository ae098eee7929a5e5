"""Processes: commands that outlive the request that started them (``POST /v1/shells/{id}/processes``,
the E2B door's ``Process.Start``). A table per shell of running commands (pid, tag, what started
them), each read by one task and fanned out to whoever follows it (the request that started it,
later attaches), with stdin that stays open after the start, signals and close-stdin.

The command itself runs over the shell's agent like any exec (``Inside.exec``: access, audit,
busy for the idle monitor), started with ``keep``: the agent lists it and detaches rather than kills
it when its stream ends, so after a server restart the next server adopts it (``_adopt``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field, replace
from typing import cast

from ..domain import access
from ..domain.errors import FeatureUnavailable, InvalidRequest, ProcessNotFound, QuotaExceeded, ShellsError
from ..domain.execution import ExecEvent, ExecExit, ExecSpec, ExecStarted, WindowSize
from ..domain.limits import MAX_PROCESSES, MAX_SUBSCRIBER_CHUNKS
from ..domain.principal import Principal
from ..domain.shell import ShellRecord
from ..domain.states import ShellState
from .auth import authorize
from .context import ControlContext
from .inside import Inside

log = logging.getLogger(__name__)
STDIN_QUEUE = 64
"""Input chunks queued for a command before ``SendInput`` waits for it to read."""


Listener = asyncio.Queue[ExecEvent | ShellsError | None]
"""One follower's queue of a process's events (None ends it)."""


@dataclass
class Process:
    pid: int
    tag: str | None
    spec: ExecSpec
    """What started it (its own env and cwd, before the template's are merged in)."""
    stdin: asyncio.Queue[bytes | WindowSize | None] | None
    listeners: set[Listener] = field(default_factory=set)
    stdin_closed: bool = False

    def to_public(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "tag": self.tag,
            "argv": list(self.spec.effective_argv),
            "env_names": sorted(self.spec.env),
            "cwd": self.spec.cwd,
            "user": self.spec.user,
            "stdin_open": self.stdin is not None and not self.stdin_closed,
            "pty": None
            if self.spec.pty is None
            else {"cols": self.spec.pty.cols, "rows": self.spec.pty.rows},
        }

    def listen(self) -> Listener:
        queue: Listener = asyncio.Queue(MAX_SUBSCRIBER_CHUNKS)
        self.listeners.add(queue)
        return queue

    def unlisten(self, queue: Listener) -> None:
        """Stop listening without reading (the request that started it answers at once)."""
        self.listeners.discard(queue)

    async def follow(self, queue: Listener) -> AsyncIterator[ExecEvent]:
        """The command's events from now on; leaving early stops listening, never the command."""
        try:
            while (event := await queue.get()) is not None:
                if isinstance(event, ShellsError):
                    raise event
                yield event
        finally:
            self.listeners.discard(queue)

    async def send(self, data: bytes) -> None:
        if self.stdin is None or self.stdin_closed:
            raise InvalidRequest(f"Process {self.pid} has no open stdin (start it with stdin=True).")
        await self.stdin.put(data)

    async def resize(self, cols: int, rows: int) -> None:
        """Resize the terminal of a process started with ``pty``."""
        if self.spec.pty is None or self.stdin is None or self.stdin_closed:
            raise InvalidRequest(f"Process {self.pid} has no terminal to resize.")
        await self.stdin.put(WindowSize(cols, rows))

    async def close_stdin(self) -> None:
        if self.stdin is not None and not self.stdin_closed:
            self.stdin_closed = True
            await self.stdin.put(None)


async def _drain(queue: asyncio.Queue[bytes | WindowSize | None]) -> AsyncIterator[bytes | WindowSize]:
    while (chunk := await queue.get()) is not None:
        yield chunk


class Processes:
    def __init__(self, ctx: ControlContext, inside: Inside) -> None:
        self.ctx = ctx
        self.inside = inside
        self._table: dict[str, dict[int, Process]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._adopted: set[str] = set()

    async def list(self, principal: Principal, shell_id: str) -> list[Process]:
        """The shell's running processes (the ``shells.exec`` scope and a role on the shell)."""
        shell = authorize(self.ctx.store, principal, shell_id, access.EXEC)
        await self._adopt(shell)
        return list(self._table.get(shell.id, {}).values())

    async def _adopt(self, shell: ShellRecord) -> None:
        """Once per server life, follow again the processes the shell's agent kept running without
        us (this server started after the one that started them): detached, they wait for it."""
        if shell.id in self._adopted or shell.state is not ShellState.RUNNING:
            return
        self._adopted.add(shell.id)
        backend = self.ctx.backend(shell.runtime)
        try:
            kept = await backend.processes(shell.id)
        except ShellsError as exc:
            log.warning("listing the kept processes of %s failed: %s", shell.id, exc.message)
            return
        for found in kept:
            if found.attached or found.pid in self._table.get(shell.id, {}):
                continue
            window = WindowSize(80, 24) if found.pty else None
            spec = ExecSpec(
                argv=found.argv, cwd=found.cwd, user=found.user, pty=window, keep=True, tag=found.tag
            )
            stdin: asyncio.Queue[bytes | WindowSize | None] = asyncio.Queue(STDIN_QUEUE)
            events = cast(AsyncGenerator[ExecEvent, None], backend.attach(shell.id, found.pid, _drain(stdin)))
            try:
                process, listener = await self._follow(
                    shell.id, Process(found.pid, found.tag, spec, stdin), events
                )
                process.unlisten(listener)
            except ShellsError as exc:  # it ended meanwhile
                log.info("adopting process %s of %s failed: %s", found.pid, shell.id, exc.message)

    async def find(
        self, principal: Principal, shell_id: str, pid: int | None = None, tag: str | None = None
    ) -> Process:
        for command in await self.list(principal, shell_id):
            if (pid is not None and command.pid == pid) or (tag is not None and command.tag == tag):
                return command
        what = f"pid {pid}" if pid is not None else f"tag {tag!r}"
        raise ProcessNotFound(f"No running process with {what}.", {"pid": pid, "tag": tag})

    async def signal(self, principal: Principal, shell_id: str, pid: int, signum: int, door: str) -> None:
        process = await self.find(principal, shell_id, pid)
        await self.inside.signal(principal, shell_id, process.pid, signum, door)

    async def start(
        self,
        principal: Principal,
        shell_id: str,
        spec: ExecSpec,
        door: str,
        *,
        tag: str | None = None,
        wants_stdin: bool = False,
    ) -> tuple[Process, Listener]:
        """Start a command and return it with a listener subscribed before its first output."""
        if len(self._table.get(shell_id, {})) >= MAX_PROCESSES:
            raise QuotaExceeded(
                f"A shell keeps at most {MAX_PROCESSES} processes running at once.",
                {"limit": "processes", "value": MAX_PROCESSES},
            )
        if tag is not None and any(c.tag == tag for c in self._table.get(shell_id, {}).values()):
            raise InvalidRequest(f"A running process already has the tag {tag!r}.", {"field": "tag"})
        wants_stdin = wants_stdin or spec.pty is not None  # a terminal always takes input
        stdin: asyncio.Queue[bytes | WindowSize | None] | None = (
            asyncio.Queue(STDIN_QUEUE) if wants_stdin else None
        )
        spec = replace(spec, keep=True, tag=tag)
        started = replace(spec, stdin_stream=_drain(stdin) if stdin is not None else None)
        events = cast(
            AsyncGenerator[ExecEvent, None],
            await self.inside.exec(principal, shell_id, started, door, "process"),
        )
        return await self._follow(shell_id, Process(0, tag, spec, stdin), events)

    async def _follow(
        self, shell_id: str, process: Process, events: AsyncGenerator[ExecEvent, None]
    ) -> tuple[Process, Listener]:
        """Enter a process in the table once its stream says it started, and read it from then on;
        returns it with a listener subscribed before its first output."""
        try:
            first = await anext(events)
        except BaseException:
            await events.aclose()
            raise
        if not isinstance(first, ExecStarted):
            await events.aclose()
            raise FeatureUnavailable("This shell's commands report no process id.")
        process.pid = first.pid
        listener = process.listen()
        self._table.setdefault(shell_id, {})[process.pid] = process
        task = asyncio.create_task(self._pump(shell_id, process, events))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return process, listener

    async def _pump(self, shell_id: str, command: Process, events: AsyncGenerator[ExecEvent, None]) -> None:
        """Hand every event to every listener (waiting for slow ones: the command's output then waits
        too, as a pipe would), then end their streams: with the exit, or with the error that ended it."""
        end: ShellsError | None = None
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    for queue in list(command.listeners):
                        await queue.put(event)
                    if isinstance(event, ExecExit):
                        break
        except ShellsError as exc:
            end = exc
        finally:
            table = self._table.get(shell_id, {})
            table.pop(command.pid, None)
            if not table:
                self._table.pop(shell_id, None)
        for queue in list(command.listeners):
            if end is not None:
                await queue.put(end)
            await queue.put(None)

    async def close(self) -> None:
        """End every process (server shutdown): each stream's close kills its process."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
