"""The agent's file operations: paths it accepts, stat and listing (with ``user.*`` extended
attributes), mkdir, remove, rename, and the channels that stream a file out (``read_file``) and in
(``write_file``: a temp file beside the target, renamed into place at the end)."""

from __future__ import annotations

import os
import shutil
import stat
from contextlib import suppress
from pathlib import Path

from .accounts import account_of, chown_to
from .loop import Channel, Connection, RequestError, os_error
from .protocol import (
    FILE_CHUNK,
    FrameKind,
    encode_frame,
    get_bool,
    get_int,
    get_optional_int,
    get_str,
    get_str_map,
)

MAX_LIST_ENTRIES = 20_000
PUMP_CHUNKS = 16
"""File chunks read per loop turn, so one big download cannot starve the other channels."""
UNWRITABLE_ROOTS = ("/proc", "/sys")
UPLOAD_PREFIX = ".shells-upload-"
"""Name prefix of the temp file an upload is written to before it is renamed into place."""


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
                self.connection.send(encode_frame(self.id, FrameKind.EOF))
                self.finish({"op": "ok", "size": self.size})
                return
            self.size += len(data)
            if self.max_bytes is not None and self.size > self.max_bytes:
                self.release()
                self.finish(
                    RequestError("payload_too_large", f"{self.path} grew past the limit.").as_message()
                )
                return
            self.connection.send(encode_frame(self.id, FrameKind.DATA, data))
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

    def on_data(self, kind: FrameKind, payload: bytes) -> None:
        if self.fd is None or kind not in (FrameKind.DATA, FrameKind.EOF):
            super().on_data(kind, payload)
            return
        try:
            if kind is FrameKind.DATA:
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


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
