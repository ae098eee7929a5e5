"""Commands that outlive the request that started them, as E2B's envd keeps them: a table per shell
of running commands (pid, tag, config), each read by one task and fanned out to whoever follows it
(the stream that started it, later ``Connect``s), with stdin that stays open after the start.

The command itself runs over the shell's agent like any exec (``control.inside``: access, audit,
busy for the idle monitor); this table only holds the open stream. A server restart ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field, replace
from typing import cast

from ..control.service import Control
from ..domain.errors import FeatureUnavailable, InvalidRequest, ProcessNotFound, QuotaExceeded, ShellsError
from ..domain.execution import ExecEvent, ExecExit, ExecSpec, ExecStarted
from ..domain.limits import E2B_MAX_PROCESSES, E2B_MAX_SUBSCRIBER_CHUNKS
from ..domain.principal import Principal

STDIN_QUEUE = 64
"""Input chunks queued for a command before ``SendInput`` waits for it to read."""


@dataclass(frozen=True)
class CommandConfig:
    """What started a command, as ``Process.List`` reports it."""

    cmd: str
    args: tuple[str, ...]
    envs: dict[str, str]
    cwd: str | None


@dataclass
class Command:
    pid: int
    tag: str | None
    config: CommandConfig
    stdin: asyncio.Queue[bytes | None] | None
    listeners: set[asyncio.Queue[ExecEvent | ShellsError | None]] = field(default_factory=set)
    stdin_closed: bool = False

    def listen(self) -> asyncio.Queue[ExecEvent | ShellsError | None]:
        queue: asyncio.Queue[ExecEvent | ShellsError | None] = asyncio.Queue(E2B_MAX_SUBSCRIBER_CHUNKS)
        self.listeners.add(queue)
        return queue

    async def follow(self, queue: asyncio.Queue[ExecEvent | ShellsError | None]) -> AsyncIterator[ExecEvent]:
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

    async def close_stdin(self) -> None:
        if self.stdin is not None and not self.stdin_closed:
            self.stdin_closed = True
            await self.stdin.put(None)


async def _drain(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while (chunk := await queue.get()) is not None:
        yield chunk


class Commands:
    def __init__(self, control: Control, door: str) -> None:
        self.control = control
        self.door = door
        self._table: dict[str, dict[int, Command]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def list(self, shell_id: str) -> list[Command]:
        return list(self._table.get(shell_id, {}).values())

    def find(self, shell_id: str, pid: int | None = None, tag: str | None = None) -> Command:
        for command in self.list(shell_id):
            if (pid is not None and command.pid == pid) or (tag is not None and command.tag == tag):
                return command
        what = f"pid {pid}" if pid is not None else f"tag {tag!r}"
        raise ProcessNotFound(f"No running process with {what}.", {"pid": pid, "tag": tag})

    async def start(
        self,
        principal: Principal,
        shell_id: str,
        spec: ExecSpec,
        config: CommandConfig,
        tag: str | None,
        wants_stdin: bool,
    ) -> tuple[Command, asyncio.Queue[ExecEvent | ShellsError | None]]:
        """Start a command and return it with a listener subscribed before its first output."""
        if len(self._table.get(shell_id, {})) >= E2B_MAX_PROCESSES:
            raise QuotaExceeded(
                f"A sandbox runs at most {E2B_MAX_PROCESSES} commands at once through this door.",
                {"limit": "e2b_processes", "value": E2B_MAX_PROCESSES},
            )
        if tag is not None and any(c.tag == tag for c in self.list(shell_id)):
            raise InvalidRequest(f"A running process already has the tag {tag!r}.", {"field": "tag"})
        stdin: asyncio.Queue[bytes | None] | None = asyncio.Queue(STDIN_QUEUE) if wants_stdin else None
        spec = replace(spec, stdin_stream=_drain(stdin) if stdin is not None else None)
        events = cast(
            AsyncGenerator[ExecEvent, None],
            await self.control.inside.exec(principal, shell_id, spec, self.door),
        )
        try:
            first = await anext(events)
        except BaseException:
            await events.aclose()
            raise
        if not isinstance(first, ExecStarted):
            await events.aclose()
            raise FeatureUnavailable("This sandbox's commands report no process id.")
        command = Command(first.pid, tag, config, stdin)
        listener = command.listen()
        self._table.setdefault(shell_id, {})[command.pid] = command
        task = asyncio.create_task(self._pump(shell_id, command, events))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return command, listener

    async def _pump(self, shell_id: str, command: Command, events: AsyncGenerator[ExecEvent, None]) -> None:
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
        """End every command (server shutdown): each stream's close kills its process."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
