"""Processes the agent starts: the ``exec`` channel (pipes or a pseudo-terminal, stdin, resize, output
caps, timeouts, the whole session killed at the end) and the ``signal`` op."""

from __future__ import annotations

import fcntl
import functools
import os
import signal
import struct
import subprocess
import termios
import time
from contextlib import suppress

from .accounts import account_of
from .kept import MAX_KEPT
from .loop import READ, WRITE, Channel, Connection, RequestError, os_error
from .protocol import (
    EXEC_CHUNK,
    BadMessage,
    FrameKind,
    encode_frame,
    get_bool,
    get_float,
    get_int,
    get_str,
    get_str_list,
    get_str_map,
)

STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STDIN_HIGH_WATER = 1024 * 1024
"""Stdin bytes queued for one process at which the agent stops reading its connection."""
DRAIN_GRACE_S = 0.1
"""How long after a process exits its pipes may stay open (a daemonised grandchild) before we stop reading."""
MAX_TIMEOUT_S = 7 * 24 * 3600.0
MAX_WINDOW = 4096
"""Largest terminal width or height (columns, rows) the agent accepts."""


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

    def __init__(
        self, child: tuple[int, int, int], outputs: dict[int, FrameKind], stdin: int, terminal: bool
    ):
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
    return _Stdio((in_r, out_w, err_w), {out_r: FrameKind.STDOUT, err_r: FrameKind.STDERR}, in_w, False)


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
    return _Stdio((terminal, terminal, terminal), {main: FrameKind.STDOUT}, writer, True)


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
        self.pipes: dict[int, FrameKind] = dict(stdio.outputs)
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

    def on_data(self, kind: FrameKind, payload: bytes) -> None:
        if not self.accepts_stdin or kind not in (FrameKind.STDIN, FrameKind.EOF):
            super().on_data(kind, payload)
        if kind is FrameKind.EOF:
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
