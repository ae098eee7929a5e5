"""The agent's event loop and framing: one ``selectors`` loop (``Agent``), the byte streams to the host
that carry many channels (``Connection``), and the base of every request that outlives its first frame
(``Channel``). What each op does is not here: the loop runs the ``Ops`` table it is given
(``guest/agent.py`` builds it).

Design: a single thread around one ``selectors`` loop; every registered fd carries its callback as the
selector key's data. No thread is needed because nothing blocks for long: pipes and connections are
non-blocking and file operations are local syscalls (``remove`` of a huge tree is the one slow case).

A connection is a bare fd read and written with os.read/os.write, so ``--serial DEVICE`` (the one
virtio-serial port of a microvm, see ``guest/vm.py``) opens the device and hands its fd to a ``Connection``
that outlives the host's visits.
The agent treats the host as untrusted too: frames are bounded, and every buffer it fills on the host's
behalf has a high-water mark at which it stops reading from the source (flow control, not buffering).
Every module of ``guest`` runs from the agent's runtime (``runtime/agent_runtime.py``): stdlib only, and
few imports (no typing: ``TYPE_CHECKING`` below is a plain constant mypy also honours).
"""

from __future__ import annotations

import errno
import functools
import heapq
import itertools
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from contextlib import suppress

from .protocol import (
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    BadMessage,
    Frame,
    FrameDecoder,
    FrameKind,
    ProtocolError,
    decode_control,
    encode_control,
    get_str,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .execs import ExecChannel

READ_SIZE = 256 * 1024
HIGH_WATER = 4 * 1024 * 1024
"""Outgoing bytes queued for one connection at which its producers (pipes, file reads) pause."""
LOW_WATER = 1024 * 1024
MAX_CONNECTIONS = 256
MAX_CHANNELS = 256

READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE
Callback = Callable[[int], None]


def log(message: str) -> None:
    with suppress(OSError):  # a full log (the host limits it) must not end the agent
        print(f"shells-agent: {message}", file=sys.stderr, flush=True)


class RequestError(Exception):
    """Ends a channel with ``{"op": "error", "code": code, "message": message}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def as_message(self) -> dict[str, object]:
        return {"op": "error", "code": self.code, "message": self.message}


_CODES_BY_ERRNO = {
    errno.ENOENT: "file_not_found",
    errno.ENOTDIR: "invalid_request",
    errno.EISDIR: "invalid_request",
    errno.EEXIST: "invalid_request",
    errno.EBUSY: "invalid_request",
    errno.EXDEV: "invalid_request",
    errno.ENXIO: "invalid_request",
    errno.EACCES: "permission_denied",
    errno.EPERM: "permission_denied",
    errno.EROFS: "permission_denied",
    errno.ENOSPC: "quota_exceeded",
    errno.EDQUOT: "quota_exceeded",
    errno.EFBIG: "quota_exceeded",
    errno.ELOOP: "invalid_path",
    errno.ENAMETOOLONG: "invalid_path",
}


def os_error(exc: OSError, path: str) -> RequestError:
    if exc.errno == errno.ENOENT:
        return RequestError("file_not_found", f"{path} does not exist.")
    if exc.errno == errno.ENOTEMPTY:
        return RequestError("invalid_request", f"{path} is not empty; pass recursive=true to remove it.")
    reason = exc.strerror or type(exc).__name__
    return RequestError(_CODES_BY_ERRNO.get(exc.errno or 0, "agent_error"), f"{path}: {reason}.")


# --- the event loop -------------------------------------------------------------------------------------


class Agent:
    """The loop, the processes it started and the connections it serves, answering ``ops``.

    ``sync_writes``: whether a file write is fsync'd before it is acknowledged. Inside a microvm the
    page cache is guest memory, which a host may have to drop with its QEMU; in a container it is the
    host kernel's, which outlives the shell and the server (and an fsync through the loop-mounted
    pool costs ~18 ms a file)."""

    def __init__(self, ops: Ops, *, sync_writes: bool = False) -> None:
        self.ops = ops
        self.sync_writes = sync_writes
        self.selector = selectors.DefaultSelector()
        self.started = time.monotonic()
        self.children: dict[int, ExecChannel] = {}
        """Spawned processes by pid, until reaped."""
        self.on_exit: dict[int, Callback] = {}
        """What to call with the status of other children (``guest/sudo_server.py``), until reaped."""
        self.execs: set[ExecChannel] = set()
        """Exec channels still reporting to a connection: the ones with timers."""
        self.kept: dict[int, ExecChannel] = {}
        """Running processes started with ``keep``: they outlive their channel and can be attached
        again (``attach``) and listed (``processes``)."""
        self.connections: set[Connection] = set()
        self.soon: list[Callable[[], None]] = []
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        """Callbacks due at a monotonic time (a heap; the int keeps equal times in order)."""
        self._timer_ids = itertools.count()
        self.stopping = False
        self._connection_count = 0
        self._install_signals()

    def later(self, delay_s: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self.timers, (time.monotonic() + delay_s, next(self._timer_ids), callback))

    def set_interest(self, fd: int, events: int, callback: Callback | None = None) -> None:
        """Register, modify or (events=0) unregister fd, skipping the syscall when nothing changes."""
        key = self.selector.get_map().get(fd)
        if key is None:
            if events:
                self.selector.register(fd, events, callback)
        elif not events:
            self.selector.unregister(fd)
        elif key.events != events:
            self.selector.modify(fd, events, callback or key.data)

    def _install_signals(self) -> None:
        """SIGCHLD and SIGTERM wake the loop through a pipe; the loop reaps, never a signal handler."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_stop_signal)
        self.set_interest(wake_r, READ, lambda mask: self._on_wakeup(wake_r))

    def _on_stop_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _on_wakeup(self, fd: int) -> None:
        with suppress(BlockingIOError):
            while os.read(fd, 4096):
                pass
        self._reap()

    def _reap(self) -> None:
        """Collect every exited child: ours go to their channel, orphans (we may be PID 1) are dropped."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            channel = self.children.pop(pid, None)
            if channel is not None:
                channel.on_exit(status)
            elif (callback := self.on_exit.pop(pid, None)) is not None:
                callback(status)

    def serve(self, listener: socket.socket) -> None:
        listener.setblocking(False)
        self.set_interest(listener.fileno(), READ, lambda mask: self._accept(listener))
        self.run()

    def run(self) -> None:
        """The loop: until SIGTERM, dispatch ready fds, then due callbacks and timers."""
        while not self.stopping:
            for key, mask in self.selector.select(self._timeout()):
                # An earlier callback in this batch may have closed this fd (and it may even be reused).
                if self.selector.get_map().get(key.fd) is key:
                    key.data(mask)
            self._run_due()
        self._shutdown()

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        except OSError as exc:
            log(f"accept failed: {exc}")
            return
        self._connection_count += 1
        name = f"connection {self._connection_count}"
        if len(self.connections) >= MAX_CONNECTIONS:
            log(f"{name}: refused, {MAX_CONNECTIONS} connections already open")
            sock.close()
            return
        sock.setblocking(False)
        Connection(self, sock.detach(), name)

    def _timeout(self) -> float | None:
        if self.soon:
            return 0
        deadlines = [d for channel in self.execs if (d := channel.next_deadline()) is not None]
        if self.timers:
            deadlines.append(self.timers[0][0])
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _run_due(self) -> None:
        due, self.soon = self.soon, []
        for callback in due:
            callback()
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            heapq.heappop(self.timers)[2]()
        for channel in list(self.execs):
            channel.on_timer(now)

    def _shutdown(self) -> None:
        for channel in list(self.children.values()):
            channel.kill()
        if os.getpid() == 1:  # take the orphans and daemons with us; kill(-1) spares the caller
            with suppress(OSError):
                os.kill(-1, signal.SIGKILL)


def _io_error(action: str, exc: OSError) -> str | None:
    """What to log when a read or write fails: nothing if the host simply hung up first."""
    return None if isinstance(exc, BrokenPipeError | ConnectionResetError) else f"{action} failed: {exc}"


class Connection:
    """One byte stream to the host carrying many channels."""

    def __init__(self, agent: Agent, fd: int, name: str) -> None:
        self.agent = agent
        self.fd = fd
        self.name = name
        self.channels: dict[int, Channel] = {}
        self.congested = False
        self.closed = False
        self._decoder = FrameDecoder()
        self._out = bytearray()
        self._broken = False
        self._read_blockers: set[int] = set()
        agent.connections.add(self)
        self._update_interest()

    def _update_interest(self) -> None:
        if self.closed:
            return
        events = 0 if self._read_blockers or self.congested else READ
        if self._out:
            events |= WRITE
        self.agent.set_interest(self.fd, events, self._on_event)

    def block_reading(self, channel: int, blocked: bool) -> None:
        """A channel cannot take more input for now (its process does not read its stdin)."""
        if blocked:
            self._read_blockers.add(channel)
        else:
            self._read_blockers.discard(channel)
        self._update_interest()

    def _on_event(self, mask: int) -> None:
        if mask & WRITE:
            self._flush()
        if mask & READ and not self.closed:
            self._on_readable()

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self.close(_io_error("read", exc))
            return
        if not data:
            self.on_hangup()
            return
        try:
            for frame in self._decoder.feed(data):
                self._dispatch(frame)
        except (ProtocolError, BadMessage) as exc:
            self.on_protocol_error(f"protocol error: {exc}")

    def on_hangup(self) -> None:
        """The host closed its end."""
        self.close(None)

    def on_protocol_error(self, error: str) -> None:
        self.close(error)

    def _dispatch(self, frame: Frame) -> None:
        channel = self.channels.get(frame.channel)
        if frame.kind is FrameKind.CONTROL:
            if channel is None:
                self._open(frame.channel, frame.payload)
            else:
                channel.on_control(decode_control(frame.payload))
        elif frame.kind in (FrameKind.STDIN, FrameKind.DATA, FrameKind.EOF):
            # Frames for an unknown channel are late arrivals for one that already ended (a process that
            # exited before reading all its stdin, an upload that failed): drop them.
            if channel is not None:
                channel.on_data(frame.kind, frame.payload)
        else:
            raise ProtocolError(f"{frame.kind.name} frames only go from the agent to the host")

    def _open(self, channel_id: int, payload: bytes) -> None:
        try:
            message = decode_control(payload)
            op = get_str(message, "op")
            if op == "cancel":
                return  # the channel already ended; its final frame is on its way
            if len(self.channels) >= MAX_CHANNELS:
                raise RequestError("invalid_request", f"More than {MAX_CHANNELS} open channels.")
            ops = self.agent.ops
            if op in ops.channel:
                ops.channel[op](self, channel_id, message)
                return
            reply: dict[str, object]
            if op == "ping":
                uptime = time.monotonic() - self.agent.started
                reply = {"version": PROTOCOL_VERSION, "pid": os.getpid(), "uptime_s": uptime}
            elif op in ops.connection:
                reply = ops.connection[op](self, message)
            elif op in ops.simple:
                reply = ops.simple[op](message)
            else:
                raise RequestError("invalid_request", f"Unknown op {op!r}.")
            self.send_control(channel_id, {"op": "ok", **reply})
        except RequestError as exc:
            self.send_control(channel_id, exc.as_message())
        except (BadMessage, ValueError) as exc:  # ValueError: e.g. a lone surrogate no syscall can encode
            self.send_control(channel_id, RequestError("invalid_request", str(exc)).as_message())
        except OSError as exc:
            self.send_control(channel_id, RequestError("agent_error", str(exc)).as_message())

    def send_control(self, channel_id: int, message: dict[str, object]) -> None:
        try:
            frame = encode_control(channel_id, message)
        except ValueError:
            error = RequestError("payload_too_large", f"The reply is larger than {MAX_PAYLOAD} bytes.")
            frame = encode_control(channel_id, error.as_message())
        self.send(frame)

    def send(self, data: bytes) -> None:
        """Write now if nothing is queued (the common case), else queue; pause producers past HIGH_WATER."""
        if self.closed or self._broken:
            return
        if not self._out:
            try:
                written = self._write_some(data)
            except BlockingIOError:
                written = 0
            except OSError as exc:
                # Closing here would pull channels out from under the caller; do it on the next turn.
                self._broken = True
                self.agent.soon.append(functools.partial(self.close, _io_error("write", exc)))
                return
            if written == len(data):
                return
            data = data[written:]
        self._out += data
        if not self.congested and len(self._out) > HIGH_WATER:
            self.congested = True
            for channel in list(self.channels.values()):
                channel.pause()
        self._update_interest()

    def _write_some(self, data: bytes | bytearray) -> int:
        """One write of the head of ``data`` (the next frames to send); a subclass may write less."""
        return os.write(self.fd, data)

    def _flush(self) -> None:
        try:
            written = self._write_some(self._out)
        except BlockingIOError:
            return
        except OSError as exc:
            self.close(_io_error("write", exc))
            return
        del self._out[:written]
        if self.congested and len(self._out) <= LOW_WATER:
            self.congested = False
            for channel in list(self.channels.values()):
                channel.resume()
        self._update_interest()

    def close(self, error: str | None) -> None:
        """Drop the connection; every channel on it is abandoned (its process group is killed)."""
        if self.closed:
            return
        if error:
            log(f"{self.name}: {error}")
        self.agent.set_interest(self.fd, 0)
        self.closed = True
        for channel in list(self.channels.values()):
            channel.abandon()
        self.channels.clear()
        self._out.clear()
        os.close(self.fd)
        self.agent.connections.discard(self)


# --- channels -----------------------------------------------------------------------------------------


class Channel:
    """A request that outlives its first frame. It ends with finish() or, if the host goes, abandon()."""

    orphaned = False
    """Nobody will hear from it again (see ``orphan``): it reports nothing."""

    def __init__(self, connection: Connection, channel_id: int) -> None:
        self.connection = connection
        self.id = channel_id
        self.active = True
        connection.channels[channel_id] = self

    @property
    def agent(self) -> Agent:
        return self.connection.agent

    def on_control(self, message: dict[str, object]) -> None:
        if get_str(message, "op") != "cancel":
            raise BadMessage(f"channel {self.id} is already open")
        self.cancel()

    def on_data(self, kind: FrameKind, payload: bytes) -> None:
        raise BadMessage(f"channel {self.id} does not take {kind.name} frames")

    def pause(self) -> None:
        """The connection is congested: stop producing output."""

    def resume(self) -> None:
        """The connection drained: produce again."""

    def cancel(self) -> None:
        self.release()
        self.finish(RequestError("invalid_request", "Cancelled by the host.").as_message())

    def abandon(self) -> None:
        self.active = False
        self.release()

    def orphan(self) -> None:
        """The stream it belongs to was started over by a host that never knew it (a fork's, a shell
        made from a snapshot). A request ends like an abandoned one; a process lives on (ExecChannel)."""
        self.abandon()

    def release(self) -> None:
        """Free the channel's resources (fds, temp files). Must be idempotent."""

    def finish(self, message: dict[str, object]) -> None:
        self.active = False
        if self.orphaned:
            return
        if self.connection.channels.get(self.id) is self:
            del self.connection.channels[self.id]
        self.connection.block_reading(self.id, False)
        self.connection.send_control(self.id, message)


ChannelOp = Callable[[Connection, int, dict[str, object]], Channel]
ConnectionOp = Callable[[Connection, dict[str, object]], dict[str, object]]
SimpleOp = Callable[[dict[str, object]], dict[str, object]]


class Ops:
    """What the agent answers, by op name and the kind of handler: a ``channel`` op opens a channel
    (its class or a function returning one); a ``connection`` op answers at once from the connection it
    arrived on (its agent's processes, the microvm's ``resync``); a ``simple`` op answers from the
    message alone. ``ping`` and ``cancel`` are the loop's own. Built once, by ``guest/agent.py``."""

    __slots__ = ("channel", "connection", "simple")

    def __init__(
        self,
        channel: dict[str, ChannelOp],
        connection: dict[str, ConnectionOp],
        simple: dict[str, SimpleOp],
    ) -> None:
        self.channel, self.connection, self.simple = channel, connection, simple
