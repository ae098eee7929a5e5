"""The ``watch`` channel: changes under a directory, from inotify (through libc, as the stdlib has
no binding), reported as events until the host cancels it."""

from __future__ import annotations

import ctypes
import os
import stat
import struct
from collections import deque
from contextlib import suppress

from .files import UPLOAD_PREFIX, check_path
from .loop import READ, READ_SIZE, Channel, Connection, RequestError, os_error
from .protocol import get_bool, get_str

_IN_NONBLOCK, _IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
_IN_MODIFY, _IN_ATTRIB, _IN_MOVED_FROM, _IN_MOVED_TO = 0x2, 0x4, 0x40, 0x80
_IN_CREATE, _IN_DELETE, _IN_IGNORED, _IN_Q_OVERFLOW, _IN_ISDIR = 0x100, 0x200, 0x8000, 0x4000, 0x40000000
_IN_DONT_FOLLOW, _IN_ONLYDIR = 0x02000000, 0x01000000
_WATCH_MASK = _IN_MODIFY | _IN_ATTRIB | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
_EVENT_HEADER = struct.Struct("iIII")
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
