"""Host-side client of the in-shell agent (wire format: ``shells.guest.protocol``).

For a container a call has a unix connection to itself, carrying a single channel. A connection whose call
ended cleanly (its last frame received) is kept for the next call to the same agent (``_Idle``), so an
exec costs a channel and not a connect, an accept and a reader task; a call that ends any other way
(cancelled, cut short, the connection broken) closes its connection, which is how a call is cancelled
(the agent then kills the process group). ``_Connection`` is a full multiplexer, so the microvm class
runs every call over one virtio-serial stream with the same channel code.

The agent runs inside the sandbox, so everything it sends is untrusted: frames are bounded by the
protocol decoder, replies are type-checked, only the error codes an agent may legitimately send map to
their ``shells.domain.errors`` class (anything else is an ``AgentError``), and every wait has a deadline.
Every limit that protects the server is counted here, whatever the agent says: a command's output
(``ExecSpec.output_cap_bytes``), a file's size, a listing's length, the bytes queued per channel and
the calls open to one agent (``domain.limits``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Mapping
from typing import cast

from shells.domain.errors import ERRORS_BY_CODE, AgentError, PayloadTooLarge, ShellBusy, ShellsError
from shells.domain.execution import (
    FILE_CHANGES,
    MAX_PATH,
    ExecEvent,
    ExecExit,
    ExecResult,
    ExecSpec,
    ExecStarted,
    FileChange,
    FileChangeKind,
    FileEntry,
    FileKind,
    KeptProcess,
    OutputCap,
    OutputChunk,
    WindowSize,
)
from shells.domain.limits import IDLE_AGENT_CONNECTIONS, MAX_AGENT_CHANNELS, MAX_LIST_ENTRIES
from shells.domain.terminal import TerminalSpec
from shells.guest.protocol import (
    FILE_CHUNK,
    HEADER_SIZE,
    MAX_PAYLOAD,
    BadMessage,
    Frame,
    FrameKind,
    ProtocolError,
    decode_control,
    decode_header,
    encode_control,
    encode_frame,
    get_bool,
    get_float,
    get_int,
    get_optional_int,
    get_str,
    get_str_list,
    new_channel_id,
)

log = logging.getLogger(__name__)

DEFAULT_OP_TIMEOUT_S = 30.0
WATCH_DEADLINE_S = 7 * 24 * 3600.0
"""A directory watch runs until its caller ends it; this only bounds a forgotten one."""
"""Deadline for a control op, and for each step of progress of a file transfer."""
EXIT_MARGIN_S = 15.0
"""How long past an exec's own timeout (which the agent enforces) we wait for its exit report."""
INBOX_FRAMES = 32
INBOX_BYTES = 2 * 1024 * 1024
"""Frames, and payload bytes, queued per channel before the connection stops reading: backpressure
reaches the agent, and a channel holds at most INBOX_BYTES plus one frame."""
AGENT_ERROR_CODES = frozenset({
    "invalid_request",
    "invalid_path",
    "file_not_found",
    "command_not_found",
    "payload_too_large",
    "permission_denied",
    "quota_exceeded",
    "agent_error",
    "process_not_found",
})  # fmt: skip
MAX_ERROR_MESSAGE = 2000
TERMINAL_OUTPUT_CAP = 1 << 62
"""A terminal's output is not capped by bytes; its session ends by time instead."""
_KINDS: dict[str, FileKind] = {"file": "file", "dir": "dir", "symlink": "symlink", "other": "other"}


def _decode(payload: bytes) -> dict[str, object]:
    try:
        return decode_control(payload)
    except BadMessage as exc:
        raise AgentError(f"The shell agent sent a malformed message: {exc}") from None


def _error_from(message: Mapping[str, object]) -> ShellsError:
    code = message.get("code")
    text = message.get("message")
    text = text[:MAX_ERROR_MESSAGE] if isinstance(text, str) else "The shell agent reported an error."
    if isinstance(code, str) and code in AGENT_ERROR_CODES:
        return ERRORS_BY_CODE.get(code, AgentError)(text)
    return AgentError(text)


def _started_from(message: Mapping[str, object]) -> ExecStarted:
    pid = message.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise AgentError("The shell agent reported a start without a valid pid.")
    return ExecStarted(pid)


def _exit_from(message: Mapping[str, object]) -> ExecExit:
    try:
        return ExecExit(
            exit_code=get_int(message, "exit_code"),
            signal=get_optional_int(message, "signal"),
            timed_out=get_bool(message, "timed_out"),
            truncated=get_bool(message, "truncated"),
            duration_ms=get_float(message, "duration_ms"),
        )
    except BadMessage as exc:
        raise AgentError(f"The shell agent sent a malformed exit report: {exc}") from None


MAX_XATTRS = 64
MAX_XATTR_TEXT = 4096


def _xattrs_from(value: object) -> dict[str, str] | None:
    """A stat's extended attributes, checked: the agent is not trusted to bound them."""
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or len(value) > MAX_XATTRS
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        or any(len(k) > MAX_XATTR_TEXT or len(v) > MAX_XATTR_TEXT for k, v in value.items())
    ):
        raise BadMessage("bad 'xattrs'")
    return dict(value)


MAX_KEPT_PROCESSES = 256


def _kept_from(value: object) -> KeptProcess:
    try:
        if not isinstance(value, dict):
            raise BadMessage("a process must be an object")
        tag, user = value.get("tag"), value.get("user")
        if not (tag is None or isinstance(tag, str)) or not (user is None or isinstance(user, str)):
            raise BadMessage("bad 'tag' or 'user'")
        argv = tuple(get_str_list(value, "argv"))
        if len(argv) > MAX_KEPT_ARGV or any(len(a) > MAX_PATH for a in argv):
            raise BadMessage("argv too long")
        return KeptProcess(
            pid=get_int(value, "pid"),
            tag=tag,
            argv=argv,
            cwd=get_str(value, "cwd"),
            user=user,
            pty=get_bool(value, "pty"),
            attached=get_bool(value, "attached"),
        )
    except BadMessage as exc:
        raise AgentError(f"The shell agent sent a malformed process: {exc}") from None


MAX_KEPT_ARGV = 4096


def _entry_from(value: object) -> FileEntry:
    try:
        if not isinstance(value, dict):
            raise BadMessage("an entry must be an object")
        kind = _KINDS.get(get_str(value, "kind"))
        link_target = value.get("link_target")
        if kind is None or not (link_target is None or isinstance(link_target, str)):
            raise BadMessage("bad 'kind' or 'link_target'")
        return FileEntry(
            path=get_str(value, "path"),
            name=get_str(value, "name"),
            kind=kind,
            size=get_int(value, "size"),
            mode=get_int(value, "mode"),
            mtime=get_float(value, "mtime"),
            link_target=link_target,
            metadata=_xattrs_from(value.get("xattrs")),
        )
    except BadMessage as exc:
        raise AgentError(f"The shell agent sent a malformed file entry: {exc}") from None


class _Channel:
    """One request/response exchange on a connection, with a bounded inbox."""

    def __init__(self, connection: ChannelTable, channel_id: int) -> None:
        self.id = channel_id
        self.finished = False
        self.detached = False
        """A kept process left running on this channel: its connection is not given to another call."""
        self._connection = connection
        self._frames: deque[Frame] = deque()
        self._queued = 0
        self._readable = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed = False
        self._failure: str | None = None

    async def deliver(self, frame: Frame) -> None:
        """Called by the connection's reader; waits while the inbox is full."""
        while self._full and not self._closed:
            self._room.clear()
            await self._room.wait()
        if not self._closed:
            self._frames.append(frame)
            self._queued += len(frame.payload)
            self._readable.set()

    @property
    def _full(self) -> bool:
        return len(self._frames) >= INBOX_FRAMES or self._queued >= INBOX_BYTES

    def wake(self) -> None:
        self._readable.set()

    def fail(self, reason: str) -> None:
        """This channel's pending and later receives raise AgentError(``reason``)."""
        self._failure = reason
        self.wake()

    @property
    def has_frames(self) -> bool:
        return bool(self._frames)

    async def recv(self, deadline: float) -> Frame:
        while not self._frames:
            self._connection.raise_if_failed()
            if self._failure is not None:
                raise AgentError(self._failure)
            self._readable.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._readable.wait()
            except TimeoutError:
                raise AgentError("The shell agent did not answer in time.") from None
        frame = self._frames.popleft()
        self._queued -= len(frame.payload)
        if not self._full:
            self._room.set()
        return frame

    def final(self, frame: Frame, op: str) -> dict[str, object]:
        """Check the channel's last frame: the expected op, or an error that is raised."""
        self.finished = True
        return self.expect(frame, op)

    def expect(self, frame: Frame, op: str) -> dict[str, object]:
        """Check a control frame: the expected op, or an error (which also ends the channel)."""
        if frame.kind is not FrameKind.CONTROL:
            raise AgentError(f"The shell agent sent an unexpected {frame.kind.name} frame.")
        message = _decode(frame.payload)
        if message["op"] == "error":
            self.finished = True
            raise _error_from(message)
        if message["op"] != op:
            raise AgentError(f"The shell agent answered {message['op']!r} where {op!r} was expected.")
        return message

    async def send(self, kind: FrameKind, payload: bytes, deadline: float) -> None:
        await self._connection.write(encode_frame(self.id, kind, payload), deadline)

    async def send_control(self, message: Mapping[str, object], deadline: float) -> None:
        try:
            frame = encode_control(self.id, message)
        except ValueError:
            raise PayloadTooLarge(f"The request is larger than {MAX_PAYLOAD} bytes.") from None
        await self._connection.write(frame, deadline)

    def detach(self) -> None:
        """Leave a kept process running: ask the agent to detach it rather than cancel it."""
        if not self.finished and not self._closed:
            self.finished = self.detached = True
            self._connection.write_nowait(encode_control(self.id, {"op": "detach"}))

    def close(self) -> None:
        """Forget the channel; if it has not finished, ask the agent to cancel it."""
        if self._closed:
            return
        self._closed = True
        self._room.set()
        self._connection.forget(self.id)
        if not self.finished:
            self._connection.write_nowait(encode_control(self.id, {"op": "cancel"}))


class ChannelTable:
    """The channels multiplexed on one byte stream to an agent: their ids, the routing of incoming
    frames to them, and the failure that ends them all. A subclass owns the stream (``write``)."""

    def __init__(self) -> None:
        self._channels: dict[int, _Channel] = {}
        self._failure: str | None = None

    def open_channel(self) -> _Channel:
        """A channel with a fresh random id: the agent's peer cannot guess it (``guest.protocol``)."""
        self.raise_if_failed()
        if len(self._channels) >= MAX_AGENT_CHANNELS:
            raise _too_many_calls()
        channel_id = new_channel_id()
        while channel_id in self._channels:
            channel_id = new_channel_id()
        channel = _Channel(self, channel_id)
        self._channels[channel.id] = channel
        return channel

    def forget(self, channel_id: int) -> None:
        self._channels.pop(channel_id, None)

    def raise_if_failed(self) -> None:
        if self._failure is not None:
            raise AgentError(self._failure)

    async def route(self, frame: Frame) -> None:
        channel = self._channels.get(frame.channel)
        if channel is not None:  # else: a late frame for a channel we gave up on
            await channel.deliver(frame)

    def fail(self, reason: str) -> None:
        """Every channel's pending and later calls raise AgentError(``reason``)."""
        self._failure = reason
        self.wake_all()

    def wake_all(self) -> None:
        for channel in list(self._channels.values()):
            channel.wake()

    def drop_all(self, reason: str) -> None:
        """End every open channel with ``reason`` (the stream they were on starts over)."""
        channels = list(self._channels.values())
        self._channels.clear()
        for channel in channels:
            channel.fail(reason)

    async def write(self, data: bytes, deadline: float) -> None:
        raise NotImplementedError

    def write_nowait(self, data: bytes) -> None:
        raise NotImplementedError


class _Connection(ChannelTable):
    """One byte stream to the agent; a reader task routes incoming frames to their channels."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__()
        self._reader = reader
        self._writer = writer
        self.loop = asyncio.get_running_loop()
        self._task = self.loop.create_task(self._read_frames())

    @property
    def reusable(self) -> bool:
        """Whether another call may use this connection: it is open, in step and idle."""
        return (
            self._failure is None
            and not self._channels
            and not self._writer.is_closing()
            and not self._task.done()
            and self.loop is asyncio.get_running_loop()
        )

    @classmethod
    async def open_unix(cls, path: str, deadline: float) -> _Connection:
        try:
            async with asyncio.timeout_at(deadline):
                reader, writer = await asyncio.open_unix_connection(path, limit=MAX_PAYLOAD + HEADER_SIZE)
        except TimeoutError:
            raise AgentError("Connecting to the shell agent timed out.") from None
        except OSError as exc:
            # The message reaches API callers, so it names no host path (the log does).
            log.debug("cannot reach the shell agent at %s: %s", path, exc)
            raise AgentError(
                f"Cannot reach the shell agent: {exc.strerror or 'connection failed'}."
            ) from None
        return cls(reader, writer)

    async def write(self, data: bytes, deadline: float) -> None:
        self.raise_if_failed()
        self._writer.write(data)
        try:
            async with asyncio.timeout_at(deadline):
                await self._writer.drain()
        except TimeoutError:
            raise AgentError("The shell agent stopped reading its connection.") from None
        except OSError as exc:
            raise AgentError(f"Lost the connection to the shell agent: {exc}.") from None

    def write_nowait(self, data: bytes) -> None:
        if self._failure is None and not self._writer.is_closing():
            self._writer.write(data)

    async def _read_frames(self) -> None:
        try:
            while True:
                size, channel_id, kind = decode_header(await self._reader.readexactly(HEADER_SIZE))
                payload = await self._reader.readexactly(size) if size else b""
                await self.route(Frame(channel_id, kind, payload))
        except asyncio.IncompleteReadError:
            failure = "The shell agent closed the connection."
        except ProtocolError as exc:
            failure = f"The shell agent broke the protocol: {exc}."
            self._writer.close()
        except OSError as exc:
            failure = f"Lost the connection to the shell agent: {exc}."
        self.fail(failure)
        self._writer.close()  # nothing more can be asked on it; a kept idle one frees its descriptor

    async def aclose(self) -> None:
        self._task.cancel()
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    def discard(self) -> None:
        """Close without waiting (a kept connection let go; one of a loop that is gone is left to
        the garbage collector, as its loop can no longer run the close)."""
        if self.loop.is_closed():
            return
        self._task.cancel()
        self._writer.close()


class _Idle:
    """Connections whose last call ended cleanly, by agent socket path, least recently used first."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._by_path: OrderedDict[str, list[_Connection]] = OrderedDict()
        self._count = 0

    def take(self, path: str) -> _Connection | None:
        """A kept connection to the agent at ``path`` that can carry a call now, if there is one;
        kept ones that cannot (the agent closed them, another event loop's) are let go."""
        kept = self._by_path.pop(path, [])
        self._count -= len(kept)
        found = None
        while kept and found is None:
            connection = kept.pop()
            if connection.reusable:
                found = connection
            else:
                connection.discard()
        if kept:
            self._by_path[path] = kept
            self._count += len(kept)
        return found

    def put(self, path: str, connection: _Connection) -> None:
        self._by_path.setdefault(path, []).append(connection)
        self._by_path.move_to_end(path)
        self._count += 1
        while self._count > self._limit:
            oldest, kept = next(iter(self._by_path.items()))
            kept.pop(0).discard()
            self._count -= 1
            if not kept:
                del self._by_path[oldest]


_IDLE = _Idle(IDLE_AGENT_CONNECTIONS)


def _too_many_calls() -> ShellBusy:
    return ShellBusy(
        f"The shell already has {MAX_AGENT_CHANNELS} commands, file transfers or terminals open; "
        "wait for some to finish.",
        {"limit": MAX_AGENT_CHANNELS},
    )


_OPEN_BY_PATH: Counter[str] = Counter()
"""Calls open to each agent reached by path (each on a connection of its own while it runs)."""


class AgentClient:
    """Talks to the agent of one shell through its unix socket."""

    def __init__(self, socket_path: str, op_timeout_s: float = DEFAULT_OP_TIMEOUT_S) -> None:
        self._path = socket_path
        self._op_timeout_s = op_timeout_s

    def _deadline(self, timeout_s: float | None = None) -> float:
        return asyncio.get_running_loop().time() + (self._op_timeout_s if timeout_s is None else timeout_s)

    @contextlib.asynccontextmanager
    async def _channel(self, deadline: float) -> AsyncIterator[_Channel]:
        if _OPEN_BY_PATH[self._path] >= MAX_AGENT_CHANNELS:
            raise _too_many_calls()
        _OPEN_BY_PATH[self._path] += 1
        try:
            connection = _IDLE.take(self._path) or await _Connection.open_unix(self._path, deadline)
            channel = connection.open_channel()
            try:
                yield channel
            finally:
                channel.close()
                if channel.finished and not channel.detached and connection.reusable:
                    _IDLE.put(self._path, connection)
                else:
                    await connection.aclose()
        finally:
            _OPEN_BY_PATH[self._path] -= 1
            if not _OPEN_BY_PATH[self._path]:
                del _OPEN_BY_PATH[self._path]

    async def _call(self, request: Mapping[str, object], timeout_s: float | None = None) -> dict[str, object]:
        deadline = self._deadline(timeout_s)
        async with self._channel(deadline) as channel:
            await channel.send_control(request, deadline)
            reply = channel.final(await channel.recv(deadline), "ok")
        del reply["op"]
        return reply

    async def ping(self, timeout_s: float = 5.0) -> dict[str, object]:
        return await self._call({"op": "ping"}, timeout_s)

    async def wait_ready(self, timeout_s: float) -> None:
        """Retry connect + ping until the agent answers (a container's socket exists before its agent
        runs: a connection then waits in its backlog, or is refused if the agent died)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        delay = 0.005
        while True:
            try:
                await self.ping(timeout_s=max(deadline - loop.time(), 0.001))
                return
            except AgentError as exc:
                if loop.time() + delay >= deadline:
                    raise AgentError(
                        f"The shell agent did not become ready within {timeout_s} s: {exc}"
                    ) from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def exec(self, spec: ExecSpec) -> AsyncGenerator[ExecEvent, None]:
        """Stream a command's output, then its exit. Closing the generator early kills the command.

        Break out of it only inside ``contextlib.aclosing`` (or exhaust it) so that happens at once.
        """
        deadline = self._deadline(spec.timeout_s + EXIT_MARGIN_S)
        request = _exec_request(
            spec.effective_argv,
            spec.env,
            spec.cwd or "/workspace",
            spec.timeout_s,
            spec.output_cap_bytes,
            stdin=bool(spec.stdin) or spec.stdin_stream is not None or spec.pty is not None,
            **({"user": spec.user} if spec.user else {}),
            **({"pty": {"cols": spec.pty.cols, "rows": spec.pty.rows}} if spec.pty else {}),
            **({"keep": True, "tag": spec.tag or ""} if spec.keep else {}),
        )
        async with self._channel(deadline) as channel:
            await channel.send_control(request, deadline)
            # Stdin goes in its own task so that output keeps flowing while it is sent: a process that
            # writes before it reads would otherwise deadlock against our own backpressure.
            feeder = (
                asyncio.create_task(_feed_stdin(channel, spec.stdin, deadline, spec.stdin_stream))
                if request["stdin"]
                else None
            )
            output = OutputCap(spec.output_cap_bytes)  # counted here too: the agent may not stop at it
            try:
                events = _process_events(channel, min(deadline, self._deadline()), deadline, output)
                async with contextlib.aclosing(events):
                    async for event in events:
                        yield event
            finally:
                if feeder is not None:
                    feeder.cancel()
                if spec.keep:
                    channel.detach()  # a kept process runs on; the agent lists it for a later attach

    async def attach(
        self, pid: int, more: AsyncIterable[bytes | WindowSize] | None = None
    ) -> AsyncGenerator[ExecEvent, None]:
        """Follow a kept process again (``ExecSpec.keep``): ExecStarted, its output from now on, its
        exit; ``more`` feeds its stdin. Closing the generator detaches it again."""
        deadline = self._deadline(WATCH_DEADLINE_S)
        async with self._channel(deadline) as channel:
            await channel.send_control({"op": "attach", "pid": pid}, self._deadline())
            feeder = asyncio.create_task(_feed_stdin(channel, b"", deadline, more)) if more else None
            try:
                events = _process_events(channel, self._deadline(), deadline, OutputCap(TERMINAL_OUTPUT_CAP))
                async with contextlib.aclosing(events):
                    async for event in events:
                        yield event
            finally:
                if feeder is not None:
                    feeder.cancel()
                channel.detach()

    async def processes(self) -> list[KeptProcess]:
        """The agent's running kept processes."""
        listed = (await self._call({"op": "processes"})).get("processes")
        if not isinstance(listed, list) or len(listed) > MAX_KEPT_PROCESSES:
            raise AgentError("The shell agent sent a malformed process list.")
        return [_kept_from(item) for item in listed]

    @contextlib.asynccontextmanager
    async def terminal(self, spec: TerminalSpec) -> AsyncIterator[AgentTerminal]:
        """Start a process on a pseudo-terminal; leaving the context kills it (if it still runs)."""
        deadline = self._deadline(spec.timeout_s + EXIT_MARGIN_S)
        window = {"cols": spec.cols, "rows": spec.rows}
        request = _exec_request(
            spec.argv,
            spec.env,
            spec.cwd,
            spec.timeout_s,
            TERMINAL_OUTPUT_CAP,
            pty=window,
            **({"user": spec.user} if spec.user else {}),
        )
        async with self._channel(deadline) as channel:
            await channel.send_control(request, deadline)
            _started_from(channel.expect(await channel.recv(self._deadline()), "started"))
            yield AgentTerminal(channel, deadline, self._deadline)

    async def run(self, spec: ExecSpec) -> ExecResult:
        output = {"stdout": bytearray(), "stderr": bytearray()}
        async with contextlib.aclosing(self.exec(spec)) as events:
            async for event in events:
                if isinstance(event, ExecExit):
                    return ExecResult(bytes(output["stdout"]), bytes(output["stderr"]), event)
                if isinstance(event, OutputChunk):
                    output[event.stream] += event.data
        raise AgentError("The shell agent ended the command without an exit report.")

    async def read_file(self, path: str, max_bytes: int) -> AsyncGenerator[bytes, None]:
        """Stream a file's content; PayloadTooLarge if it holds more than max_bytes."""
        async with self._channel(self._deadline()) as channel:
            request = {"op": "read_file", "path": path, "max_bytes": max_bytes}
            await channel.send_control(request, self._deadline())
            received = 0
            while (frame := await channel.recv(self._deadline())).kind is not FrameKind.EOF:
                if frame.kind is not FrameKind.DATA:
                    channel.final(frame, "ok")  # raises the agent's error
                    raise AgentError("The shell agent ended a download without its EOF frame.")
                received += len(frame.payload)
                if received > max_bytes:
                    raise PayloadTooLarge(f"{path} is larger than {max_bytes} bytes.")
                yield frame.payload
            reply = channel.final(await channel.recv(self._deadline()), "ok")
            if reply.get("size") != received:
                raise AgentError(f"The shell agent reported a size for {path} that does not match its data.")

    async def write_file(
        self,
        path: str,
        chunks: AsyncIterable[bytes],
        mode: int = 0o644,
        append: bool = False,
        owner: str | None = None,
        xattrs: Mapping[str, str] | None = None,
    ) -> int:
        """Upload a file; the agent renames it into place only once all of it arrived (unless append).
        With ``owner`` the file belongs to that user of the shell; ``xattrs`` (``user.…`` names) are
        set on it."""
        async with self._channel(self._deadline()) as channel:
            request: dict[str, object] = {"op": "write_file", "path": path, "mode": mode, "append": append}
            if owner:
                request["user"] = owner
            if xattrs:
                request["xattrs"] = dict(xattrs)
            await channel.send_control(request, self._deadline())
            async for chunk in chunks:
                if channel.has_frames:
                    break  # the agent already answered, which can only be an error: stop sending
                for offset in range(0, len(chunk), FILE_CHUNK):
                    await channel.send(FrameKind.DATA, chunk[offset : offset + FILE_CHUNK], self._deadline())
            else:
                await channel.send(FrameKind.EOF, b"", self._deadline())
            reply = channel.final(await channel.recv(self._deadline()), "ok")
        try:
            return get_int(reply, "size")
        except BadMessage as exc:
            raise AgentError(f"The shell agent sent a malformed reply: {exc}") from None

    async def list_dir(self, path: str, xattr_prefix: str | None = None) -> list[FileEntry]:
        request: dict[str, object] = {"op": "list_dir", "path": path}
        if xattr_prefix:
            request["xattr_prefix"] = xattr_prefix
        entries = (await self._call(request)).get("entries")
        if not isinstance(entries, list) or len(entries) > MAX_LIST_ENTRIES:
            raise AgentError("The shell agent sent a malformed directory listing.")
        return [_entry_from(entry) for entry in entries]

    async def stat(self, path: str, xattr_prefix: str | None = None) -> FileEntry:
        """The entry at ``path``; with ``xattr_prefix`` also its extended attributes so named."""
        request: dict[str, object] = {"op": "stat", "path": path}
        if xattr_prefix:
            request["xattr_prefix"] = xattr_prefix
        return _entry_from((await self._call(request)).get("entry"))

    async def mkdir(self, path: str, parents: bool = True, owner: str | None = None) -> None:
        request: dict[str, object] = {"op": "mkdir", "path": path, "parents": parents}
        if owner:
            request["user"] = owner
        await self._call(request)

    async def rename(self, source: str, destination: str) -> FileEntry:
        reply = await self._call({"op": "rename", "source": source, "destination": destination})
        return _entry_from(reply.get("entry"))

    async def signal(self, pid: int, signum: int) -> None:
        """Send ``signum`` to a running command the agent started (ProcessNotFound otherwise)."""
        await self._call({"op": "signal", "pid": pid, "signal": signum})

    async def remove(self, path: str, recursive: bool = False) -> None:
        await self._call({"op": "remove", "path": path, "recursive": recursive})

    async def watch(self, path: str, recursive: bool = False) -> AsyncGenerator[FileChange | None, None]:
        """None once the watch is in place, then the changes in directory ``path`` (and below with
        ``recursive``) as they happen, until the generator is closed (which ends the agent's watch)."""
        async with self._channel(self._deadline()) as channel:
            await channel.send_control(
                {"op": "watch", "path": path, "recursive": recursive}, self._deadline()
            )
            channel.expect(await channel.recv(self._deadline()), "started")
            yield None
            forever = self._deadline(WATCH_DEADLINE_S)
            while True:
                message = channel.expect(await channel.recv(forever), "event")
                name, kind = message.get("name"), message.get("type")
                if not isinstance(name, str) or len(name) > MAX_PATH or kind not in FILE_CHANGES:
                    raise AgentError("The shell agent sent a malformed change event.")
                yield FileChange(name, cast(FileChangeKind, kind))

    async def stats(self) -> dict[str, object]:
        return await self._call({"op": "stats"})


def _exec_request(
    argv: tuple[str, ...], env: Mapping[str, str], cwd: str, timeout_s: float, cap: int, **extra: object
) -> dict[str, object]:
    return {
        "op": "exec",
        "argv": list(argv),
        "env": dict(env),
        "cwd": cwd,
        "timeout_s": timeout_s,
        "output_cap_bytes": cap,
        **extra,
    }


class AgentTerminal:
    """The host's side of a process on a pseudo-terminal (``domain.terminal.TerminalIO``)."""

    def __init__(self, channel: _Channel, deadline: float, op_deadline: Callable[[], float]) -> None:
        self._channel = channel
        self._deadline = deadline
        self._op_deadline = op_deadline

    async def read(self) -> bytes | ExecExit:
        frame = await self._channel.recv(self._deadline)
        if frame.kind is FrameKind.STDOUT:
            return frame.payload
        return _exit_from(self._channel.final(frame, "exit"))

    async def write(self, data: bytes) -> None:
        for offset in range(0, len(data), FILE_CHUNK):
            await self._channel.send(FrameKind.STDIN, data[offset : offset + FILE_CHUNK], self._op_deadline())

    async def resize(self, cols: int, rows: int) -> None:
        await self._channel.send_control({"op": "resize", "cols": cols, "rows": rows}, self._op_deadline())


async def _process_events(
    channel: _Channel, start_deadline: float, deadline: float, output: OutputCap
) -> AsyncGenerator[ExecEvent, None]:
    """A process's events on its channel: ``started``, its output (counted against ``output``: the
    agent may not stop at its cap), then its exit."""
    yield _started_from(channel.expect(await channel.recv(start_deadline), "started"))
    while True:
        frame = await channel.recv(deadline)
        if frame.kind is FrameKind.STDOUT or frame.kind is FrameKind.STDERR:
            if data := output.keep(frame.payload):
                yield OutputChunk("stdout" if frame.kind is FrameKind.STDOUT else "stderr", data)
        else:
            yield output.mark(_exit_from(channel.final(frame, "exit")))
            return


async def _feed_stdin(
    channel: _Channel, data: bytes, deadline: float, more: AsyncIterable[bytes | WindowSize] | None = None
) -> None:
    """Send stdin (``data``, then what ``more`` yields until it ends: bytes, or a terminal's new
    size) then EOF. A failure here also shows on the receiving side, which reports it."""

    async def send(chunk: bytes) -> None:
        for offset in range(0, len(chunk), FILE_CHUNK):
            await channel.send(FrameKind.STDIN, chunk[offset : offset + FILE_CHUNK], deadline)

    with contextlib.suppress(AgentError):
        await send(data)
        if more is not None:
            async for item in more:
                if isinstance(item, WindowSize):
                    await channel.send_control(
                        {"op": "resize", "cols": item.cols, "rows": item.rows}, deadline
                    )
                else:
                    await send(item)
        await channel.send(FrameKind.EOF, b"", deadline)
