"""The Shells agent: runs inside every shell and serves the host over the guest protocol.

Started by the runtime as ``python3 -I -S -m guest.agent --listen-fd 3`` from the host's agent runtime
(``runtime/agent_runtime.py``: its own interpreter, libraries and precompiled stdlib, whatever the image
holds), fd 3 being the listening socket the host made (``runtime/container/backend.py``).
Every module imported here is in that runtime, which holds nothing else: a new import (also a lazy
one inside a function) is found there by reading these sources; a stdlib module that imports more
lazily is not, so keep start-up imports few.
It is PID 1 of a container, so besides serving requests it reaps every process that ends up as its child.

Design: a single thread around one ``selectors`` loop; every registered fd carries its callback as the
selector key's data. No thread is needed because nothing blocks for long: pipes and connections are
non-blocking and file operations are local syscalls (``remove`` of a huge tree is the one slow case).

A connection is a bare fd read and written with os.read/os.write, so ``--serial DEVICE`` (the one
virtio-serial port of a microvm, see ``guest/vm.py``) opens the device and hands its fd to a ``Connection``
that outlives the host's visits.
The agent treats the host as untrusted too: frames are bounded, and every buffer it fills on the host's
behalf has a high-water mark at which it stops reading from the source (flow control, not buffering).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import heapq
import itertools
import os
import pwd
import selectors
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import termios
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from .protocol import (
    EXEC_CHUNK,
    FILE_CHUNK,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    SERVE_SUDO,
    BadMessage,
    Frame,
    FrameDecoder,
    Kind,
    ProtocolError,
    decode_control,
    encode_control,
    encode_frame,
    get_bool,
    get_float,
    get_int,
    get_optional_int,
    get_str,
    get_str_list,
    get_str_map,
)

STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
READ_SIZE = 256 * 1024
HIGH_WATER = 4 * 1024 * 1024
"""Outgoing bytes queued for one connection at which its producers (pipes, file reads) pause."""
LOW_WATER = 1024 * 1024
STDIN_HIGH_WATER = 1024 * 1024
"""Stdin bytes queued for one process at which the agent stops reading its connection."""
DRAIN_GRACE_S = 0.1
"""How long after a process exits its pipes may stay open (a daemonised grandchild) before we stop reading."""
MAX_CONNECTIONS = 256
MAX_CHANNELS = 256
MAX_TIMEOUT_S = 7 * 24 * 3600.0
MAX_LIST_ENTRIES = 20_000
MAX_WINDOW = 4096
"""Largest terminal width or height (columns, rows) the agent accepts."""
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PROCESS_NAME = b"shells-agent"
"""What ``ps`` shows for PID 1 (its ``comm``)."""
PUMP_CHUNKS = 16
"""File chunks read per loop turn, so one big download cannot starve the other channels."""
UNWRITABLE_ROOTS = ("/proc", "/sys")
UPLOAD_PREFIX = ".shells-upload-"
"""Name prefix of the temp file an upload is written to before it is renamed into place."""

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


# --- paths and file operations ------------------------------------------------------------------------


def check_path(path: str) -> str:
    """Absolute, no NUL, no '..' component; returns the path with '//' and '.' collapsed."""
    if not path.startswith("/") or "\0" in path or ".." in path.split("/") or len(path) > 4096:
        raise RequestError(
            "invalid_path", f"{path!r} is not allowed: send an absolute path without NUL bytes or '..'."
        )
    return os.path.normpath(path)


def check_writable(path: str) -> str:
    """Like check_path, and refuse anything that resolves into /proc or /sys (magic links, kernel knobs)."""
    path = check_path(path)
    resolved = Path(path).parent.resolve() / Path(path).name
    if any(resolved.is_relative_to(root) for root in UNWRITABLE_ROOTS):
        raise RequestError(
            "invalid_path", f"{path} is inside /proc or /sys, which the file API cannot change."
        )
    return path


def entry_of(path: str, st: os.stat_result) -> dict[str, object]:
    mode = st.st_mode
    link_target = None
    if stat.S_ISLNK(mode):
        kind = "symlink"
        with suppress(OSError):
            link_target = str(Path(path).readlink())
    else:
        kind = "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"
    return {
        "path": path,
        "name": Path(path).name or "/",
        "kind": kind,
        "size": st.st_size,
        "mode": stat.S_IMODE(mode),
        "mtime": st.st_mtime,
        "link_target": link_target,
    }


MAX_XATTRS = 64
MAX_XATTR_NAME = 255
MAX_XATTR_VALUE = 4096
"""Extended attributes: how many a request sets or a stat reports, and their sizes (the kernel's
own limit for a name; a value larger than this is cut in a stat and refused in a write)."""


def _xattr_prefix(message: dict[str, object]) -> str | None:
    prefix = message.get("xattr_prefix")
    if prefix is None:
        return None
    if not isinstance(prefix, str) or not prefix.startswith("user.") or len(prefix) > MAX_XATTR_NAME:
        raise RequestError("invalid_request", "'xattr_prefix' must start with 'user.'.")
    return prefix


def xattrs_of(path: str, prefix: str) -> dict[str, str]:
    """The extended attributes of ``path`` (not followed) named ``prefix…``, without the prefix."""
    found: dict[str, str] = {}
    with suppress(OSError):
        for name in os.listxattr(path, follow_symlinks=False):
            if name.startswith(prefix) and len(found) < MAX_XATTRS:
                with suppress(OSError):
                    value = os.getxattr(path, name, follow_symlinks=False)[:MAX_XATTR_VALUE]
                    found[name[len(prefix) :]] = value.decode(errors="replace")
    return found


def xattrs_to_set(message: dict[str, object]) -> dict[str, bytes]:
    """A write's ``"xattrs": {"user.…": value}``, checked."""
    wanted = get_str_map(message, "xattrs", {})
    if len(wanted) > MAX_XATTRS:
        raise RequestError("invalid_request", f"At most {MAX_XATTRS} extended attributes at once.")
    checked: dict[str, bytes] = {}
    for name, value in wanted.items():
        data = value.encode()
        if not name.startswith("user.") or len(name) > MAX_XATTR_NAME or "\0" in name:
            raise RequestError("invalid_request", f"Extended attribute {name[:60]!r} must be 'user.…'.")
        if len(data) > MAX_XATTR_VALUE:
            raise RequestError(
                "invalid_request", f"Extended attribute {name!r} is over {MAX_XATTR_VALUE} bytes."
            )
        checked[name] = data
    return checked


def op_stat(message: dict[str, object]) -> dict[str, object]:
    path = check_path(get_str(message, "path"))
    prefix = _xattr_prefix(message)
    try:
        entry = entry_of(path, os.lstat(path))
    except OSError as exc:
        raise os_error(exc, path) from None
    if prefix is not None:
        entry["xattrs"] = xattrs_of(path, prefix)
    return {"entry": entry}


def op_list_dir(message: dict[str, object]) -> dict[str, object]:
    path = check_path(get_str(message, "path"))
    prefix = _xattr_prefix(message)
    entries: list[dict[str, object]] = []
    try:
        with os.scandir(path) as listing:
            for item in listing:
                if len(entries) >= MAX_LIST_ENTRIES:
                    raise RequestError(
                        "payload_too_large", f"{path} has more than {MAX_LIST_ENTRIES} entries; use exec."
                    )
                with suppress(FileNotFoundError):  # removed while we listed
                    entry = entry_of(item.path, item.stat(follow_symlinks=False))
                    if prefix is not None:
                        entry["xattrs"] = xattrs_of(item.path, prefix)
                    entries.append(entry)
    except NotADirectoryError:
        raise RequestError("invalid_request", f"{path} is not a directory.") from None
    except OSError as exc:
        raise os_error(exc, path) from None
    entries.sort(key=lambda entry: str(entry["name"]))
    return {"entries": entries}


def op_mkdir(message: dict[str, object]) -> dict[str, object]:
    path = check_writable(get_str(message, "path"))
    parents = get_bool(message, "parents", False)
    account = account_of(message)
    try:
        missing = [p for p in (Path(path), *Path(path).parents) if not p.exists()]
        Path(path).mkdir(0o755, parents=parents, exist_ok=True)
        for made in missing:
            chown_to(str(made), account)
    except FileExistsError:
        raise RequestError("invalid_request", f"{path} exists and is not a directory.") from None
    except OSError as exc:
        raise os_error(exc, path) from None
    return {}


def op_remove(message: dict[str, object]) -> dict[str, object]:
    path = check_writable(get_str(message, "path"))
    recursive = get_bool(message, "recursive", False)
    if path == "/":
        raise RequestError("invalid_path", "Refusing to remove '/'.")
    try:
        target = Path(path)
        if not stat.S_ISDIR(target.lstat().st_mode):
            target.unlink()
        elif recursive:
            shutil.rmtree(target)  # fd-based on Linux: never follows symlinks
        else:
            target.rmdir()
    except OSError as exc:
        raise os_error(exc, path) from None
    return {}


def op_rename(message: dict[str, object]) -> dict[str, object]:
    """Move ``source`` to ``destination`` (one rename(2): both inside the same file system)."""
    source = check_writable(get_str(message, "source"))
    destination = check_writable(get_str(message, "destination"))
    if "/" in (source, destination):
        raise RequestError("invalid_path", "Refusing to move '/'.")
    try:
        Path(source).rename(destination)
        return {"entry": entry_of(destination, os.lstat(destination))}
    except OSError as exc:
        raise os_error(exc, source if exc.filename == source else destination) from None


class Account:
    """A Linux user of the shell that a request runs as: ``"user"`` is a name or a uid, optionally
    with ``:group`` (a name or gid), as an image's ``User`` is written. A numeric uid needs no
    entry in the shell's /etc/passwd (its HOME is then ``/``). A plain class: the agent imports
    neither typing nor dataclasses, to start fast."""

    __slots__ = ("gid", "groups", "home", "name", "shell", "uid")

    def __init__(self, name: str, uid: int, gid: int, home: str, shell: str, groups: tuple[int, ...]) -> None:
        self.name, self.uid, self.gid = name, uid, gid
        self.home, self.shell, self.groups = home, shell, groups

    @classmethod
    def named(cls, user: str) -> Account:
        import grp

        name, _, group = user.partition(":")
        try:
            entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
        except (KeyError, ValueError):
            if not name.isdigit():
                raise RequestError("invalid_request", f"There is no user {name!r} in this shell.") from None
            entry = None
        gid = 0 if entry is None else entry.pw_gid
        if group:
            try:
                gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
            except (KeyError, ValueError):
                raise RequestError("invalid_request", f"There is no group {group!r} in this shell.") from None
        if entry is None:
            return cls(name, int(name), gid, "/", "/bin/sh", ())
        groups = tuple(os.getgrouplist(entry.pw_name, gid))
        return cls(entry.pw_name, entry.pw_uid, gid, entry.pw_dir, entry.pw_shell or "/bin/sh", groups)

    def environment(self) -> dict[str, str]:
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name, "SHELL": self.shell}


def account_of(message: dict[str, object]) -> Account | None:
    name = get_str(message, "user", "")
    return Account.named(name) if name else None


def chown_to(path: str, account: Account | None) -> None:
    if account is not None:
        os.chown(path, account.uid, account.gid, follow_symlinks=False)


def op_stats(message: dict[str, object]) -> dict[str, object]:
    try:
        with open("/proc/loadavg") as file:
            loadavg = [float(value) for value in file.read().split()[:3]]
        meminfo: dict[str, int] = {}
        with open("/proc/meminfo") as file:
            for line in file:
                key, _, rest = line.partition(":")
                meminfo[key] = int(rest.split()[0]) * 1024
        with open("/proc/uptime") as file:
            uptime = float(file.read().split()[0])
        processes = sum(1 for entry in Path("/proc").iterdir() if entry.name.isdigit())
    except (OSError, ValueError, IndexError) as exc:
        raise RequestError("agent_error", f"Cannot read /proc: {exc}.") from None
    return {
        "loadavg": loadavg,
        "mem_total_bytes": meminfo.get("MemTotal", 0),
        "mem_available_bytes": meminfo.get("MemAvailable", 0),
        "processes": processes,
        "uptime_s": uptime,
    }


# --- the event loop -------------------------------------------------------------------------------------


class Agent:
    sync_writes = False
    """Whether a file write is fsync'd before it is acknowledged: inside a microvm (``guest/vm.py``
    sets it) the page cache is guest memory, which a host may have to drop with its QEMU; in a
    container it is the host kernel's, which outlives the shell and the server (and an fsync through
    the loop-mounted pool costs ~18 ms a file)."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.started = time.monotonic()
        self.children: dict[int, ExecChannel] = {}
        """Spawned processes by pid, until reaped."""
        self.on_exit: dict[int, Callable[[int], None]] = {}
        """What to call with the status of other children (``guest/sudo_server.py``), until reaped."""
        self.execs: set[ExecChannel] = set()
        self.kept: dict[int, ExecChannel] = {}
        """Running processes started with ``keep``: they outlive their channel and can be attached
        again (``attach``) and listed (``processes``)."""
        """Exec channels still reporting to a connection: the ones with timers."""
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
        if frame.kind is Kind.CONTROL:
            if channel is None:
                self._open(frame.channel, frame.payload)
            else:
                channel.on_control(decode_control(frame.payload))
        elif frame.kind in (Kind.STDIN, Kind.DATA, Kind.EOF):
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
            if op in CHANNEL_OPS:
                CHANNEL_OPS[op](self, channel_id, message)
                return
            reply: dict[str, object]
            if op == "ping":
                uptime = time.monotonic() - self.agent.started
                reply = {"version": PROTOCOL_VERSION, "pid": os.getpid(), "uptime_s": uptime}
            elif op in CONNECTION_OPS:
                reply = CONNECTION_OPS[op](self, message)
            elif op in SIMPLE_OPS:
                reply = SIMPLE_OPS[op](message)
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

    def on_data(self, kind: Kind, payload: bytes) -> None:
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


def _pipes(count: int) -> list[tuple[int, int]]:
    pairs: list[tuple[int, int]] = []
    try:
        for _ in range(count):
            pairs.append(os.pipe())
    except OSError:
        for pair in pairs:
            for fd in pair:
                os.close(fd)
        raise
    return pairs


class _Stdio:
    """The descriptors of one process: its own stdin/stdout/stderr, and our ends of them."""

    __slots__ = ("child", "outputs", "stdin", "terminal")

    def __init__(self, child: tuple[int, int, int], outputs: dict[int, Kind], stdin: int, terminal: bool):
        self.child = child
        self.outputs = outputs
        self.stdin = stdin
        """Our end of its input, or -1."""
        self.terminal = terminal

    def close_child_side(self) -> None:
        for fd in set(self.child):
            if fd >= 0:
                os.close(fd)

    def close_our_side(self) -> None:
        for fd in {*self.outputs, self.stdin}:
            if fd >= 0:
                os.close(fd)


def _pipe_stdio(wants_stdin: bool) -> _Stdio:
    (out_r, out_w), (err_r, err_w), *stdin_pipe = _pipes(3 if wants_stdin else 2)
    in_r, in_w = stdin_pipe[0] if stdin_pipe else (subprocess.DEVNULL, -1)
    return _Stdio((in_r, out_w, err_w), {out_r: Kind.STDOUT, err_r: Kind.STDERR}, in_w, False)


def _pty_stdio(cols: int, rows: int) -> _Stdio:
    """A pseudo-terminal: the process gets its terminal side as stdin, stdout and stderr (and as its
    controlling terminal); we read its output from the other side and write its input to a duplicate
    of it, so that reading and writing wait in the selector independently. Output is one stream."""
    main, terminal = os.openpty()
    try:
        set_window(main, cols, rows)
        writer = os.dup(main)
    except OSError:
        os.close(main)
        os.close(terminal)
        raise
    return _Stdio((terminal, terminal, terminal), {main: Kind.STDOUT}, writer, True)


def set_window(fd: int, cols: int, rows: int) -> None:
    """Set a terminal's size; the kernel sends SIGWINCH to its foreground process group."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _window(message: dict[str, object], key: str = "pty") -> tuple[int, int] | None:
    """The ``{"cols", "rows"}`` of a terminal request, or None for plain pipes."""
    value = message.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadMessage(f"field {key!r} must be an object with 'cols' and 'rows'")
    return _window_size(value)


def _window_size(message: dict[str, object]) -> tuple[int, int]:
    cols, rows = get_int(message, "cols"), get_int(message, "rows")
    if not (0 < cols <= MAX_WINDOW and 0 < rows <= MAX_WINDOW):
        raise BadMessage(f"'cols' and 'rows' must be from 1 to {MAX_WINDOW}")
    return cols, rows


def session_members(session: int) -> list[int]:
    """Pids of the processes in ``session`` (from /proc/<pid>/stat: pid (comm) state ppid pgrp session)."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as file:
                fields = file.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if len(fields) > 3 and int(fields[3]) == session:
            members.append(int(entry.name))
    return members


def kill_session(session: int, passes: int = 3) -> None:
    """SIGKILL every process of a session, again while new ones appear (a forking process)."""
    for _ in range(passes):
        members = session_members(session)
        if not members:
            return
        for pid in members:
            with suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _take_terminal() -> None:
    """Run in the child after setsid(): make the terminal on stdin its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _spawn_error(exc: OSError, program: str, cwd: str) -> RequestError:
    if exc.filename == cwd:
        if isinstance(exc, FileNotFoundError):
            return RequestError("file_not_found", f"The working directory {cwd} does not exist.")
        return os_error(exc, cwd)
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return RequestError("command_not_found", f"{program}: command not found.")
    return RequestError("invalid_request", f"Cannot run {program}: {exc.strerror or exc}.")


class ExecChannel(Channel):
    """One process in its own session, streaming its output until it exits and its pipes close.

    With ``"pty": {"cols", "rows"}`` the process runs on a pseudo-terminal instead of pipes (an
    interactive shell): stdin is always open, output comes as STDOUT frames only, and the host may
    send ``{"op": "resize", "cols", "rows"}`` on the open channel.
    """

    def __init__(self, connection: Connection, channel_id: int, message: dict[str, object]) -> None:
        argv = get_str_list(message, "argv")
        env = get_str_map(message, "env", {})
        cwd = get_str(message, "cwd", "/")
        timeout_s = get_float(message, "timeout_s", 600.0)
        self.cap = get_int(message, "output_cap_bytes", 64 * 1024 * 1024)
        window = _window(message)
        wants_stdin = window is not None or get_bool(message, "stdin", False)
        if not argv or not argv[0] or any("\0" in arg for arg in argv):
            raise RequestError("invalid_request", "'argv' must be a non-empty list of strings without NUL.")
        if any(not key or "=" in key or "\0" in key or "\0" in value for key, value in env.items()):
            raise RequestError("invalid_request", "'env' names must be non-empty, without '=' or NUL.")
        if not cwd.startswith("/") or "\0" in cwd:
            raise RequestError("invalid_request", "'cwd' must be an absolute path.")
        if not 0 < timeout_s <= MAX_TIMEOUT_S or self.cap <= 0:
            raise RequestError("invalid_request", "'timeout_s' and 'output_cap_bytes' must be positive.")
        self.keep = get_bool(message, "keep", False)
        if self.keep and len(connection.agent.kept) >= MAX_KEPT:
            raise RequestError("quota_exceeded", f"At most {MAX_KEPT} kept processes run at once.")
        tag = get_str(message, "tag", "")
        self.listing: dict[str, object] = {
            "tag": tag or None,
            "argv": argv,
            "cwd": cwd,
            "user": get_str(message, "user", "") or None,
            "pty": window is not None,
        }
        account = account_of(message)
        # As a user, its identity (HOME, USER, LOGNAME, SHELL) wins over the host's defaults (HOME=/root).
        env = {"PATH": STANDARD_PATH, **env, **(account.environment() if account else {})}

        stdio = _pipe_stdio(wants_stdin) if window is None else _pty_stdio(*window)
        self.started = time.monotonic()
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=stdio.child[0],
                stdout=stdio.child[1],
                stderr=stdio.child[2],
                env=env,
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
                preexec_fn=_take_terminal if stdio.terminal else None,  # noqa: PLW1509 (single-threaded)
                user=account.uid if account else None,
                group=account.gid if account else None,
                extra_groups=list(account.groups) if account else None,
            )
        except OSError as exc:
            stdio.close_our_side()
            raise _spawn_error(exc, argv[0], cwd) from None
        finally:
            stdio.close_child_side()
        super().__init__(connection, channel_id)
        self.deadline = self.started + timeout_s
        self.sent = 0
        self.truncated = self.timed_out = self.killed = False
        self.status: int | None = None
        self.ended = self.grace_deadline = 0.0
        self.pipes: dict[int, Kind] = dict(stdio.outputs)
        self._readers = {fd: functools.partial(self._on_pipe, fd) for fd in self.pipes}
        self.stdin_fd: int | None = stdio.stdin if wants_stdin else None
        self.accepts_stdin = wants_stdin
        self.terminal = stdio.terminal
        self.stdin_buffer = bytearray()
        for fd in {*self.pipes, stdio.stdin}:
            if fd >= 0:
                os.set_blocking(fd, False)
        self.agent.children[self.process.pid] = self
        self.agent.execs.add(self)
        if self.keep:
            self.agent.kept[self.process.pid] = self
        connection.send_control(channel_id, {"op": "started", "pid": self.process.pid})
        self.resume()

    # output

    def pause(self) -> None:
        for fd in self.pipes:
            self.agent.set_interest(fd, 0)

    @property
    def congested(self) -> bool:
        return self.connection.congested and not self.orphaned

    def resume(self) -> None:
        if self.congested:
            return
        for fd, reader in self._readers.items():
            if fd in self.pipes:
                self.agent.set_interest(fd, READ, reader)
        if self.status is not None:  # the grace period only counts while we can actually read
            self.grace_deadline = time.monotonic() + DRAIN_GRACE_S

    def _on_pipe(self, fd: int, mask: int) -> None:
        try:
            data = os.read(fd, EXEC_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_pipe(fd)
            self._maybe_finish()
            return
        if self.orphaned:  # read and dropped: a full pipe would stop the process
            return
        room = self.cap - self.sent
        if len(data) > room:  # past the cap output is read and dropped, never buffered
            self.truncated = True
            data = data[:room]
            if not data:
                return
        self.sent += len(data)
        self.connection.send(encode_frame(self.id, self.pipes[fd], data))

    def _close_pipe(self, fd: int) -> None:
        self.agent.set_interest(fd, 0)
        os.close(fd)
        del self.pipes[fd]

    # input

    def on_control(self, message: dict[str, object]) -> None:
        if self.keep and get_str(message, "op") == "detach":
            if self.connection.channels.get(self.id) is self:
                del self.connection.channels[self.id]
            self.connection.block_reading(self.id, False)
            self.detach()
            return
        if not (self.terminal and get_str(message, "op") == "resize"):
            super().on_control(message)
            return
        cols, rows = _window_size(message)
        if self.stdin_fd is not None:  # else the process is gone and its size no longer matters
            with suppress(OSError):
                set_window(self.stdin_fd, cols, rows)

    def on_data(self, kind: Kind, payload: bytes) -> None:
        if not self.accepts_stdin or kind not in (Kind.STDIN, Kind.EOF):
            super().on_data(kind, payload)
        if kind is Kind.EOF:
            self.accepts_stdin = False
        elif self.stdin_fd is not None:
            self.stdin_buffer += payload
        self._write_stdin()

    def _write_stdin(self, mask: int = 0) -> None:
        fd = self.stdin_fd
        if fd is None:
            return
        if self.stdin_buffer:
            try:
                del self.stdin_buffer[: os.write(fd, self.stdin_buffer)]
            except BlockingIOError:
                pass
            except OSError:  # EPIPE: the process closed its stdin; the rest has nowhere to go
                self._close_stdin()
                return
        if not self.stdin_buffer and not self.accepts_stdin:
            self._close_stdin()
            return
        self.agent.set_interest(fd, WRITE if self.stdin_buffer else 0, self._write_stdin)
        if not self.orphaned:
            self.connection.block_reading(self.id, len(self.stdin_buffer) > STDIN_HIGH_WATER)

    def _close_stdin(self) -> None:
        if self.stdin_fd is not None:
            self.agent.set_interest(self.stdin_fd, 0)
            os.close(self.stdin_fd)
            self.stdin_fd = None
            self.stdin_buffer.clear()
            if not self.orphaned:
                self.connection.block_reading(self.id, False)

    # lifecycle

    def kill(self) -> None:
        """SIGKILL the process's session (its process group, and the groups an interactive shell makes
        for its jobs), but only while the leader is unreaped: after that its pid (and so the group and
        session ids) could belong to someone else."""
        if self.status is None:
            self.killed = True
            for kill in (os.killpg, os.kill):
                with suppress(ProcessLookupError, PermissionError):
                    kill(self.process.pid, signal.SIGKILL)
            kill_session(self.process.pid)

    def cancel(self) -> None:
        self.kill()
        self.grace_deadline = 0.0
        self._maybe_finish()

    def abandon(self) -> None:
        if self.keep and self.status is None:
            self.detach()
            return
        self.kill()
        super().abandon()

    def detach(self) -> None:
        """A kept process whose host went (or asked): it runs on unheard, its output read and
        dropped, its stdin still open, until ``attach`` gives it a channel again."""
        self.orphaned = True
        self.resume()

    def attach(self, connection: Connection, channel_id: int) -> None:
        self.connection = connection
        self.id = channel_id
        self.orphaned = False
        self.active = True
        connection.channels[channel_id] = self
        connection.send_control(channel_id, {"op": "started", "pid": self.process.pid})
        self.resume()

    def orphan(self) -> None:
        """Run on unheard: output is read and dropped, input never comes (a terminal stays open, so
        its shell waits rather than hangs up), and the end is reaped but reported to no one. The
        timeout still applies. A kept process is detached instead (its input stays open)."""
        if self.keep:
            self.detach()
            return
        self.orphaned = True
        self.accepts_stdin = False
        if not self.terminal:
            self._close_stdin()
        self.resume()

    def on_exit(self, status: int) -> None:
        self.agent.kept.pop(self.process.pid, None)
        self.status = status
        self.ended = time.monotonic()
        self.process.returncode = os.waitstatus_to_exitcode(status)  # so Popen never waits on its own
        self.grace_deadline = self.ended + DRAIN_GRACE_S
        self._close_stdin()
        self._maybe_finish()

    def next_deadline(self) -> float | None:
        if self.status is None:
            return None if self.killed else self.deadline
        return self.grace_deadline if self.pipes and not self.congested else None

    def on_timer(self, now: float) -> None:
        if self.status is None and not self.killed and now >= self.deadline:
            self.timed_out = True
            self.kill()
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if not self.active or self.status is None:
            return
        if self.pipes and (self.congested or time.monotonic() < self.grace_deadline):
            return
        self.release()
        code = os.waitstatus_to_exitcode(self.status)
        signum = -code if code < 0 else None
        self.finish(
            {
                "op": "exit",
                "exit_code": 128 + signum if signum else code,
                "signal": signum,
                "timed_out": self.timed_out,
                "truncated": self.truncated,
                "duration_ms": (self.ended - self.started) * 1000,
            }
        )

    def release(self) -> None:
        for fd in list(self.pipes):
            self._close_pipe(fd)
        self._close_stdin()
        self.agent.execs.discard(self)


class ReadFileChannel(Channel):
    """Streams a regular file as DATA frames, as fast as the connection drains."""

    def __init__(self, connection: Connection, channel_id: int, message: dict[str, object]) -> None:
        self.path = check_path(get_str(message, "path"))
        self.max_bytes = get_optional_int(message, "max_bytes")
        try:
            # O_NONBLOCK so that a FIFO cannot stall the loop at open; fstat then rejects it.
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as exc:
            raise os_error(exc, self.path) from None
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise RequestError("invalid_request", f"{self.path} is a directory; use list_dir.")
            if not stat.S_ISREG(st.st_mode):
                raise RequestError("invalid_request", f"{self.path} is not a regular file.")
            if self.max_bytes is not None and st.st_size > self.max_bytes:
                raise RequestError("payload_too_large", f"{self.path} is larger than {self.max_bytes} bytes.")
        except BaseException:
            os.close(fd)
            raise
        super().__init__(connection, channel_id)
        self.fd: int | None = fd
        self.size = 0
        self.pump()

    def pump(self) -> None:
        for _ in range(PUMP_CHUNKS):
            if not self.active or self.connection.congested or self.fd is None:
                return
            try:
                data = os.read(self.fd, FILE_CHUNK)
            except OSError as exc:
                self.release()
                self.finish(os_error(exc, self.path).as_message())
                return
            if not data:
                self.release()
                self.connection.send(encode_frame(self.id, Kind.EOF))
                self.finish({"op": "ok", "size": self.size})
                return
            self.size += len(data)
            if self.max_bytes is not None and self.size > self.max_bytes:
                self.release()
                self.finish(
                    RequestError("payload_too_large", f"{self.path} grew past the limit.").as_message()
                )
                return
            self.connection.send(encode_frame(self.id, Kind.DATA, data))
        self.agent.soon.append(self.pump)

    def resume(self) -> None:
        self.agent.soon.append(self.pump)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class WriteFileChannel(Channel):
    """Receives DATA frames into a temp file next to the target and renames it into place on EOF."""

    def __init__(self, connection: Connection, channel_id: int, message: dict[str, object]) -> None:
        self.path = check_writable(get_str(message, "path"))
        mode = get_int(message, "mode", 0o644)
        append = get_bool(message, "append", False)
        account = account_of(message)
        xattrs = xattrs_to_set(message)
        if not 0 <= mode <= 0o7777:
            raise RequestError("invalid_request", "'mode' must be a permission number such as 0o644.")
        flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
        self.temp: str | None = None
        try:
            if append:
                # O_NONBLOCK: opening a FIFO for writing must not wait for a reader.
                fd = os.open(self.path, flags | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, mode)
            else:
                if Path(self.path).is_dir():
                    raise RequestError("invalid_request", f"{self.path} is a directory.")
                self.temp = str(Path(self.path).with_name(f"{UPLOAD_PREFIX}{os.urandom(8).hex()}"))
                fd = os.open(self.temp, flags | os.O_CREAT | os.O_EXCL, 0o600)
                os.fchmod(fd, mode)
                if account is not None:
                    os.fchown(fd, account.uid, account.gid)
            for name, value in xattrs.items():
                os.setxattr(fd, name, value)
        except OSError as exc:
            raise os_error(exc, self.path) from None
        self.fd: int | None = fd
        if append and not stat.S_ISREG(os.fstat(fd).st_mode):
            self.release()
            raise RequestError("invalid_request", f"{self.path} is not a regular file.")
        super().__init__(connection, channel_id)
        self.size = 0

    def on_data(self, kind: Kind, payload: bytes) -> None:
        if self.fd is None or kind not in (Kind.DATA, Kind.EOF):
            super().on_data(kind, payload)
            return
        try:
            if kind is Kind.DATA:
                view = memoryview(payload)
                while view:
                    view = view[os.write(self.fd, view) :]
                self.size += len(payload)
                return
            if self.agent.sync_writes:  # the data, then below the name that makes it visible
                os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None
            if self.temp is not None:
                Path(self.temp).replace(self.path)
                self.temp = None
                if self.agent.sync_writes:
                    fsync_dir(str(Path(self.path).parent))
        except OSError as exc:
            self.release()
            self.finish(os_error(exc, self.path).as_message())
            return
        self.finish({"op": "ok", "size": self.size})

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.temp is not None:
            with suppress(OSError):
                Path(self.temp).unlink()
            self.temp = None


_IN_NONBLOCK, _IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
_IN_MODIFY, _IN_ATTRIB, _IN_MOVED_FROM, _IN_MOVED_TO = 0x2, 0x4, 0x40, 0x80
_IN_CREATE, _IN_DELETE, _IN_IGNORED, _IN_Q_OVERFLOW, _IN_ISDIR = 0x100, 0x200, 0x8000, 0x4000, 0x40000000
_IN_DONT_FOLLOW, _IN_ONLYDIR = 0x02000000, 0x01000000
_WATCH_MASK = _IN_MODIFY | _IN_ATTRIB | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
_EVENT_HEADER = struct.Struct("iIII")
MAX_KEPT = 256
"""Kept processes (``keep``) one agent runs at once."""
MAX_WATCHES = 4096
"""Directories one watch follows (a recursive watch of a bigger tree fails at start)."""
_KINDS = (
    (_IN_CREATE | _IN_MOVED_TO, "create"),
    (_IN_DELETE, "remove"),
    (_IN_MOVED_FROM, "rename"),
    (_IN_MODIFY, "write"),
    (_IN_ATTRIB, "chmod"),
)
_libc = ctypes.CDLL(None, use_errno=True)


def _inotify_add(fd: int, path: str) -> int:
    wd = int(_libc.inotify_add_watch(fd, os.fsencode(path), _WATCH_MASK | _IN_DONT_FOLLOW | _IN_ONLYDIR))
    if wd < 0:
        err = ctypes.get_errno()
        raise os_error(OSError(err, os.strerror(err)), path)
    return wd


class WatchChannel(Channel):
    """Reports changes in a directory (and with ``recursive`` its subdirectories, new ones too) as
    ``{"op": "event", "name": <path relative to it>, "type": create|write|remove|rename|chmod}``
    until the host cancels it. Uses inotify; never follows a symlink."""

    def __init__(self, connection: Connection, channel_id: int, message: dict[str, object]) -> None:
        self.root = check_path(get_str(message, "path"))
        self.recursive = get_bool(message, "recursive", False)
        try:
            if not stat.S_ISDIR(os.lstat(self.root).st_mode):
                raise RequestError("invalid_request", f"{self.root} is not a directory.")
        except OSError as exc:
            raise os_error(exc, self.root) from None
        fd = int(_libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
        if fd < 0:
            raise RequestError("agent_error", f"inotify: {os.strerror(ctypes.get_errno())}.")
        self.fd: int | None = fd
        self.dirs: dict[int, str] = {}
        self.uploads: deque[int] = deque(maxlen=64)
        """Rename cookies of the agent's own upload temp files: their arrival is a file written."""
        try:
            self._add(self.root)
            if self.recursive:
                for top, subdirs, _ in os.walk(self.root):
                    for sub in subdirs:
                        self._add(f"{top}/{sub}")
        except RequestError:
            self.release()
            raise
        super().__init__(connection, channel_id)
        connection.send_control(channel_id, {"op": "started"})
        self.resume()

    def _add(self, path: str) -> None:
        assert self.fd is not None
        if len(self.dirs) >= MAX_WATCHES:
            raise RequestError("payload_too_large", f"More than {MAX_WATCHES} directories to watch.")
        self.dirs[_inotify_add(self.fd, path)] = os.path.relpath(path, self.root)

    def pause(self) -> None:
        if self.fd is not None:
            self.agent.set_interest(self.fd, 0)

    def resume(self) -> None:
        if self.fd is not None and not self.connection.congested:
            self.agent.set_interest(self.fd, READ, self._on_ready)

    def _on_ready(self, mask: int) -> None:
        assert self.fd is not None
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return
        offset = 0
        while offset + _EVENT_HEADER.size <= len(data):
            wd, event_mask, cookie, size = _EVENT_HEADER.unpack_from(data, offset)
            raw = data[offset + _EVENT_HEADER.size : offset + _EVENT_HEADER.size + size]
            offset += _EVENT_HEADER.size + size
            if event_mask & _IN_Q_OVERFLOW:
                self.release()
                self.finish(
                    RequestError("agent_error", "Too many changes at once; watch again.").as_message()
                )
                return
            if event_mask & _IN_IGNORED:
                self.dirs.pop(wd, None)
                continue
            base = self.dirs.get(wd)
            if base is None:
                continue
            leaf = os.fsdecode(raw.rstrip(b"\0"))
            name = os.path.normpath(f"{base}/{leaf}")
            if leaf.startswith(UPLOAD_PREFIX):  # the file API's own temp file: not a change to report
                if event_mask & _IN_MOVED_FROM:
                    self.uploads.append(cookie)
                continue
            if event_mask & _IN_MOVED_TO and cookie in self.uploads:
                self.uploads.remove(cookie)
                for kind in ("create", "write"):  # an upload landed: a file made and written
                    self.connection.send_control(self.id, {"op": "event", "name": name, "type": kind})
                continue
            if self.recursive and event_mask & _IN_ISDIR and event_mask & (_IN_CREATE | _IN_MOVED_TO):
                with suppress(RequestError):
                    self._add(f"{self.root}/{name}")
            for bits, kind in _KINDS:
                if event_mask & bits:
                    self.connection.send_control(self.id, {"op": "event", "name": name, "type": kind})
                    break

    def release(self) -> None:
        if self.fd is not None:
            self.agent.set_interest(self.fd, 0)
            os.close(self.fd)
            self.fd = None


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def op_processes(connection: Connection, message: dict[str, object]) -> dict[str, object]:
    """The running kept processes: pid, tag, argv, cwd, pty, and whether a channel follows them."""
    return {
        "processes": [
            {"pid": pid, **channel.listing, "attached": not channel.orphaned}
            for pid, channel in connection.agent.kept.items()
            if channel.status is None
        ]
    }


def attach_channel(connection: Connection, channel_id: int, message: dict[str, object]) -> Channel:
    """Give a detached kept process this channel: ``started``, then its output from now on."""
    pid = get_int(message, "pid")
    channel = connection.agent.kept.get(pid)
    if channel is None or channel.status is not None:
        raise RequestError("process_not_found", f"No running kept process with pid {pid}.")
    if not channel.orphaned:
        raise RequestError("invalid_request", f"Process {pid} is attached to another call.")
    channel.attach(connection, channel_id)
    return channel


CHANNEL_OPS: dict[str, Callable[[Connection, int, dict[str, object]], Channel]] = {
    "exec": ExecChannel,
    "read_file": ReadFileChannel,
    "write_file": WriteFileChannel,
    "watch": WatchChannel,
    "attach": attach_channel,
}
SIGNALS = frozenset({signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT})
"""The signals the host may send to a process the agent started."""


def op_signal(connection: Connection, message: dict[str, object]) -> dict[str, object]:
    """Send a signal to the process group of a running command the agent started (never to any other
    pid: the number could belong to anything, including the agent)."""
    pid, signum = get_int(message, "pid"), get_int(message, "signal")
    if signum not in SIGNALS:
        raise RequestError("invalid_request", f"Signal {signum} is not one of {sorted(SIGNALS)}.")
    channel = connection.agent.children.get(pid)
    if channel is None or channel.status is not None:
        raise RequestError("process_not_found", f"No running process with pid {pid}.")
    for kill in (os.killpg, os.kill):
        with suppress(ProcessLookupError, PermissionError):
            kill(pid, signum)
    return {}


CONNECTION_OPS: dict[str, Callable[[Connection, dict[str, object]], dict[str, object]]] = {
    "signal": op_signal,
    "processes": op_processes,
}
"""Ops that act on the connection they arrive on (the microvm's ``resync``, see ``guest/vm.py``)."""
SIMPLE_OPS: dict[str, Callable[[dict[str, object]], dict[str, object]]] = {
    "stat": op_stat,
    "list_dir": op_list_dir,
    "mkdir": op_mkdir,
    "remove": op_remove,
    "rename": op_rename,
    "stats": op_stats,
}


def adopt_listener(fd: int) -> socket.socket:
    """The listening unix socket the host made and passed as ``fd``.

    Its path lives in a host directory the shell cannot see, so nothing inside can put another
    socket in its place; only this process holds it (close-on-exec from here on, so no child does).
    """
    listener = socket.socket(fileno=fd)
    listener.set_inheritable(False)
    if listener.family != socket.AF_UNIX or listener.type != socket.SOCK_STREAM:
        raise SystemExit(f"shells-agent: fd {fd} is not a listening unix stream socket")
    return listener


def refuse_inspection() -> None:
    """Make this process non-dumpable, so code in the shell (same uid, no ``CAP_SYS_PTRACE``) cannot
    reach into it: /proc/1/mem, environ, fd links, maps, and pidfd_getfd all need ptrace access,
    which the kernel refuses for a non-dumpable process. Its children become dumpable again at exec.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")
    # Started through the runtime's dynamic loader, the process would be named after it in ps.
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(PROCESS_NAME), 0, 0, 0)


USAGE = "usage: shells-agent (--listen-fd FD [--serve-sudo] | --serial DEVICE)"


def parse_args(argv: list[str]) -> tuple[str, str, bool]:
    """``(option, value, serve_sudo)`` for exactly one of ``--listen-fd FD`` (an inherited listening
    unix socket; optionally ``--serve-sudo``) and ``--serial DEVICE`` (the virtio-serial port of a
    microvm). By hand rather than argparse, which alone was a fifth of the agent's start-up."""
    serve_sudo = argv[2:] == [SERVE_SUDO]
    if serve_sudo:
        argv = argv[:2]
    if (
        len(argv) != 2
        or argv[0] not in ("--listen-fd", "--serial")
        or (serve_sudo and argv[0] != "--listen-fd")
    ):
        raise SystemExit(USAGE)
    if argv[0] == "--listen-fd" and not argv[1].isdigit():
        raise SystemExit(f"shells-agent: --listen-fd needs a number, not {argv[1]!r}")
    return argv[0], argv[1], serve_sudo


def sudo_client_argv() -> list[str]:
    """How this agent was started (its runtime's loader and interpreter), up to its ``-m``, then the
    sudo client's module."""
    with open("/proc/self/cmdline", "rb") as f:
        words = [w.decode() for w in f.read().split(b"\0") if w]
    return [*words[: words.index("-m")], "-m", "guest.sudo"]


def main(argv: list[str] | None = None) -> int:
    option, value, serve_sudo = parse_args(sys.argv[1:] if argv is None else argv)
    refuse_inspection()
    agent = Agent()
    if option == "--serial":
        from .vm import serve_serial

        serve_serial(agent, value)
        return 0
    listener = adopt_listener(int(value))
    if serve_sudo:
        from .sudo_server import SudoServer

        SudoServer(agent).start(sudo_client_argv())
    with suppress(OSError):  # nobody may be reading our stdout; the socket is what counts
        print("shells-agent ready", flush=True)
    try:
        agent.serve(listener)
    finally:
        listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
