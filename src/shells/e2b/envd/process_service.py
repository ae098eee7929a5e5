"""envd's ``process.Process`` service over Shells: commands that outlive their stream
(``e2b.processes``), re-attached by pid or tag, with stdin, signals and close-stdin."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from typing import Any, Literal

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.request import RequestContext
from protobuf import Oneof

from ...control.processes import Listener
from ...control.processes import Process as Running
from ...control.service import Control
from ...domain.errors import InvalidRequest, ShellsError
from ...domain.execution import MAX_EXEC_TIMEOUT_S, ExecExit, ExecSpec, OutputChunk, WindowSize
from ..access import DoorAccess
from ..errors import connect_error, rpc
from ..sandboxes import DOOR
from .caller import Caller, caller
from .gen.process import process_pb as pb
from .gen.process.process_connect import Process
from .keepalive import interval, with_keepalive

SIGNALS = {pb.Signal.SIGTERM: signal.SIGTERM, pb.Signal.SIGKILL: signal.SIGKILL}


def _started(pid: int) -> pb.ProcessEvent:
    event: Oneof[Literal["start"], pb.ProcessEvent.StartEvent] = Oneof(
        field="start", value=pb.ProcessEvent.StartEvent(pid=pid)
    )
    return pb.ProcessEvent(event=event)


def _output(chunk: OutputChunk, terminal: bool) -> pb.ProcessEvent:
    """Output as envd sends it: a terminal's is ``pty``, else ``stdout`` or ``stderr``."""
    pty: Oneof[Literal["pty"], bytes] = Oneof(field="pty", value=chunk.data)
    stdout: Oneof[Literal["stdout"], bytes] = Oneof(field="stdout", value=chunk.data)
    stderr: Oneof[Literal["stderr"], bytes] = Oneof(field="stderr", value=chunk.data)
    output = pty if terminal else stdout if chunk.stream == "stdout" else stderr
    data = pb.ProcessEvent.DataEvent(output=output)
    event: Oneof[Literal["data"], pb.ProcessEvent.DataEvent] = Oneof(field="data", value=data)
    return pb.ProcessEvent(event=event)


def _keepalive() -> pb.ProcessEvent:
    event: Oneof[Literal["keepalive"], pb.ProcessEvent.KeepAlive] = Oneof(
        field="keepalive", value=pb.ProcessEvent.KeepAlive()
    )
    return pb.ProcessEvent(event=event)


KEEPALIVE = _keepalive()


def _end(exit_: ExecExit | None, error: str | None = None) -> pb.ProcessEvent:
    """envd's end event: ``exited`` false and ``signal: …`` status for a killed process, as Go's
    ProcessState reports it."""
    if exit_ is None:
        end = pb.ProcessEvent.EndEvent(exit_code=-1, exited=False, status="error", error=error)
    elif exit_.signal:
        name = signal.strsignal(exit_.signal) or str(exit_.signal)
        end = pb.ProcessEvent.EndEvent(exit_code=-1, exited=False, status=f"signal: {name.lower()}")
    else:
        status = f"exit status {exit_.exit_code}"
        end = pb.ProcessEvent.EndEvent(exit_code=exit_.exit_code, exited=True, status=status)
    event: Oneof[Literal["end"], pb.ProcessEvent.EndEvent] = Oneof(field="end", value=end)
    return pb.ProcessEvent(event=event)


async def _stream(process: Running, listener: Listener, every: float) -> AsyncIterator[pb.ProcessEvent]:
    """A process's events (from ``listener``, subscribed before) as envd events, with keepalives
    on a quiet stream."""
    terminal = process.spec.pty is not None
    try:
        async for event in with_keepalive(process.follow(listener), every):
            if event is None:
                yield KEEPALIVE
            elif isinstance(event, OutputChunk):
                yield _output(event, terminal)
            elif isinstance(event, ExecExit):
                yield _end(event)
                return
    except ShellsError as exc:
        yield _end(None, exc.message)


STREAMED_OUTPUT_CAP = 1 << 62
"""A process's output is streamed to its listeners (never held), so it has no cap of its own."""


def _window(pty: pb.PTY | None) -> WindowSize:
    size = pty.size if pty is not None else None
    if size is None:
        raise InvalidRequest("'pty.size' needs 'cols' and 'rows'.", {"field": "pty.size"})
    return WindowSize(size.cols, size.rows)


def _info(process: Running) -> pb.ProcessInfo:
    cmd, *args = process.spec.effective_argv
    config = pb.ProcessConfig(cmd=cmd, args=args, envs=dict(process.spec.env), cwd=process.spec.cwd)
    return pb.ProcessInfo(config=config, pid=process.pid, tag=process.tag)


def _selector(selector: pb.ProcessSelector | None) -> tuple[int | None, str | None]:
    match selector.selector if selector is not None else None:
        case Oneof(field="pid", value=int(pid)):
            return pid, None
        case Oneof(field="tag", value=str(tag)):
            return None, tag
    raise InvalidRequest("Name the process by 'pid' or 'tag'.", {"field": "process"})


class ProcessService(Process):
    def __init__(self, control: Control, access: DoorAccess) -> None:
        self.control = control
        self.access = access

    def _caller(self, ctx: RequestContext[Any, Any]) -> Caller:
        return caller(self.access, ctx.request_headers)

    async def _command(
        self, ctx: RequestContext[Any, Any], selector: pb.ProcessSelector | None
    ) -> tuple[Caller, Running]:
        who = self._caller(ctx)
        pid, tag = _selector(selector)
        return who, await self.control.processes.find(who.principal, who.shell_id, pid, tag)

    async def start(
        self, request: pb.StartRequest, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[pb.StartResponse]:
        try:
            who = self._caller(ctx)
            config = request.process
            if config is None or not config.cmd:
                raise InvalidRequest("'process.cmd' is required.", {"field": "process.cmd"})
            remaining = ctx.timeout_ms
            timeout_s = min(remaining / 1000, MAX_EXEC_TIMEOUT_S) if remaining else MAX_EXEC_TIMEOUT_S
            cwd = who.path(config.cwd) if config.has_field("cwd") and config.cwd else who.home
            spec = ExecSpec(
                argv=(config.cmd, *config.args),
                env=dict(config.envs),
                cwd=cwd,
                timeout_s=max(timeout_s, 0.001),
                user=who.run_as,
                output_cap_bytes=STREAMED_OUTPUT_CAP,
                pty=_window(request.pty) if request.has_field("pty") else None,
            )
            tag = request.tag if request.has_field("tag") else None
            wants_stdin = request.stdin if request.has_field("stdin") else True
            command, listener = await self.control.processes.start(
                who.principal, who.shell_id, spec, DOOR, tag=tag, wants_stdin=wants_stdin
            )
        except ShellsError as exc:
            raise connect_error(exc) from None
        yield pb.StartResponse(event=_started(command.pid))
        async for event in _stream(command, listener, interval(ctx.request_headers)):
            yield pb.StartResponse(event=event)

    async def connect(
        self, request: pb.ConnectRequest, ctx: RequestContext[Any, Any]
    ) -> AsyncIterator[pb.ConnectResponse]:
        try:
            _, command = await self._command(ctx, request.process)
        except ShellsError as exc:
            raise connect_error(exc) from None
        listener = command.listen()
        yield pb.ConnectResponse(event=_started(command.pid))
        async for event in _stream(command, listener, interval(ctx.request_headers)):
            yield pb.ConnectResponse(event=event)

    @rpc
    async def list(self, request: pb.ListRequest, ctx: RequestContext[Any, Any]) -> pb.ListResponse:
        who = self._caller(ctx)
        running = await self.control.processes.list(who.principal, who.shell_id)
        return pb.ListResponse(processes=[_info(p) for p in running])

    @rpc
    async def send_input(
        self, request: pb.SendInputRequest, ctx: RequestContext[Any, Any]
    ) -> pb.SendInputResponse:
        _, command = await self._command(ctx, request.process)
        match request.input.input if request.input is not None else None:
            case Oneof(field="stdin" | "pty", value=bytes(data)):
                await command.send(data)
            case _:
                raise InvalidRequest("Send 'stdin' or 'pty' bytes.", {"field": "input"})
        return pb.SendInputResponse()

    @rpc
    async def close_stdin(
        self, request: pb.CloseStdinRequest, ctx: RequestContext[Any, Any]
    ) -> pb.CloseStdinResponse:
        _, command = await self._command(ctx, request.process)
        await command.close_stdin()
        return pb.CloseStdinResponse()

    @rpc
    async def send_signal(
        self, request: pb.SendSignalRequest, ctx: RequestContext[Any, Any]
    ) -> pb.SendSignalResponse:
        who, command = await self._command(ctx, request.process)
        signum = SIGNALS.get(request.signal) if request.signal is not None else None
        if signum is None:
            raise InvalidRequest("'signal' must be SIGTERM or SIGKILL.", {"field": "signal"})
        await self.control.processes.signal(who.principal, who.shell_id, command.pid, signum, DOOR)
        return pb.SendSignalResponse()

    @rpc
    async def update(self, request: pb.UpdateRequest, ctx: RequestContext[Any, Any]) -> pb.UpdateResponse:
        """Resize a process's terminal."""
        _, command = await self._command(ctx, request.process)
        if not request.has_field("pty") or request.pty is None:
            raise InvalidRequest("Give the terminal's new 'pty.size'.", {"field": "pty"})
        size = _window(request.pty)
        await command.resize(size.cols, size.rows)
        return pb.UpdateResponse()

    async def stream_input(
        self, request: AsyncIterator[pb.StreamInputRequest], ctx: RequestContext[Any, Any]
    ) -> pb.StreamInputResponse:
        raise ConnectError(Code.UNIMPLEMENTED, "Use SendInput; StreamInput is not served by this door.")
