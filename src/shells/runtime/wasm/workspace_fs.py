"""The files API of a wasm shell, done by the host on the shell's /workspace directory.

The guest can create symlinks in /workspace that point anywhere (``../../etc/passwd``); wasmtime
refuses to follow them for the guest, and this module makes sure the host never follows one either:
every path is walked one component at a time from an open directory fd with ``O_NOFOLLOW``, and
metadata is read with ``lstat``. A symlink is listed and stat'ed as a symlink; reading, writing or
descending through one is refused with InvalidPath.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ...domain.errors import (
    FileNotFound,
    InvalidPath,
    InvalidRequest,
    PayloadTooLarge,
    QuotaExceeded,
    ShellsError,
)
from ...domain.execution import FileEntry, FileKind
from ...domain.paths import WORKSPACE

READ_CHUNK = 256 * 1024
MAX_LIST_ENTRIES = 10_000
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def relative(path: str) -> list[str]:
    """The components below /workspace of a clean shell path (``normalize_shell_path`` made it)."""
    if path == WORKSPACE:
        return []
    if not path.startswith(WORKSPACE + "/"):
        raise InvalidPath(
            f"{path} is outside /workspace: a wasm shell's only filesystem is /workspace; "
            "name a path under it.",
            {"path": path},
        )
    return path[len(WORKSPACE) + 1 :].split("/")


def os_error(exc: OSError, path: str) -> ShellsError:
    if exc.errno == errno.ENOENT:
        return FileNotFound(f"{path} does not exist.", {"path": path})
    if exc.errno in (errno.ELOOP, errno.EMLINK):
        return InvalidPath(
            f"{path} is or passes through a symbolic link; the host never follows links in a wasm "
            "shell (read its target instead).",
            {"path": path},
        )
    if exc.errno in (errno.EDQUOT, errno.ENOSPC, errno.EFBIG):
        return QuotaExceeded(f"{path}: the shell's /workspace disk quota is full; remove files first.")
    if exc.errno == errno.ENOTEMPTY:
        return InvalidRequest(f"{path} is not empty; pass recursive=true to remove it.", {"path": path})
    return InvalidRequest(f"{path}: {exc.strerror or exc}.", {"path": path})


@contextmanager
def dir_fd(root: Path, parts: list[str], path: str) -> Iterator[int]:
    """An fd of the directory ``root/parts`` reached without following any symlink."""
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError as exc:
        raise os_error(exc, path) from None
    try:
        for part in parts:
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except NotADirectoryError:
                if stat.S_ISLNK(_lstat_mode(fd, part)):  # O_NOFOLLOW|O_DIRECTORY on a link: ENOTDIR
                    raise os_error(OSError(errno.ELOOP, "symbolic link"), path) from None
                raise InvalidRequest(f"{path}: {part} is not a directory.", {"path": path}) from None
            except OSError as exc:
                raise os_error(exc, path) from None
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def open_file(root: Path, path: str, flags: int, mode: int = 0o644) -> int:
    """An fd of the file ``path`` (a shell path) opened with ``flags``, never through a symlink."""
    parts = relative(path)
    if not parts:
        raise InvalidRequest(f"{path} is a directory.", {"path": path})
    with dir_fd(root, parts[:-1], path) as parent:
        try:
            fd = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
        except IsADirectoryError:
            raise InvalidRequest(f"{path} is a directory.", {"path": path}) from None
        except OSError as exc:
            raise os_error(exc, path) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InvalidRequest(f"{path} is not a regular file.", {"path": path})
    return fd


def read_chunks(root: Path, path: str, max_bytes: int) -> Iterator[bytes]:
    fd = open_file(root, path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if os.fstat(fd).st_size > max_bytes:
            raise PayloadTooLarge(f"{path} is larger than {max_bytes} bytes.")
        while chunk := os.read(fd, READ_CHUNK):
            yield chunk
    finally:
        os.close(fd)


def _entry(path: str, st: os.stat_result, link_target: str | None) -> FileEntry:
    mode = st.st_mode
    kind: FileKind = (
        "symlink"
        if stat.S_ISLNK(mode)
        else "dir"
        if stat.S_ISDIR(mode)
        else "file"
        if stat.S_ISREG(mode)
        else "other"
    )
    return FileEntry(
        path=path,
        name=path.rsplit("/", 1)[-1] or "/",
        kind=kind,
        size=st.st_size,
        mode=stat.S_IMODE(mode),
        mtime=st.st_mtime,
        link_target=link_target,
    )


def _lstat_at(parent: int, name: str, path: str) -> FileEntry:
    try:
        st = os.lstat(name, dir_fd=parent)
        target = os.readlink(name, dir_fd=parent) if stat.S_ISLNK(st.st_mode) else None
    except OSError as exc:
        raise os_error(exc, path) from None
    return _entry(path, st, target)


def stat_path(root: Path, path: str) -> FileEntry:
    parts = relative(path)
    if not parts:
        return _entry(path, os.lstat(root), None)
    with dir_fd(root, parts[:-1], path) as parent:
        return _lstat_at(parent, parts[-1], path)


def list_dir(root: Path, path: str) -> list[FileEntry]:
    entries: list[FileEntry] = []
    with dir_fd(root, relative(path), path) as fd:
        for name in sorted(os.listdir(fd)):  # noqa: PTH208 - listdir of an fd, not a path
            if len(entries) >= MAX_LIST_ENTRIES:
                raise PayloadTooLarge(f"{path} has more than {MAX_LIST_ENTRIES} entries; use exec.")
            with suppress(FileNotFound):  # removed while we listed
                entries.append(_lstat_at(fd, name, f"{path.rstrip('/')}/{name}"))
    return entries


def write_file(root: Path, path: str, chunks: Iterator[bytes], mode: int) -> int:
    """Write into a temporary file beside ``path`` and rename it into place once complete."""
    parts = relative(path)
    if not parts:
        raise InvalidRequest(f"{path} is a directory.", {"path": path})
    with dir_fd(root, parts[:-1], path) as parent:
        tmp = f".{parts[-1]}.shells-upload-{os.getpid()}-{id(chunks)}"
        try:
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode & 0o7777, dir_fd=parent
            )
        except OSError as exc:
            raise os_error(exc, path) from None
        size = 0
        try:
            try:
                for chunk in chunks:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
                    size += len(chunk)
                os.fchmod(fd, mode & 0o7777)
            finally:
                os.close(fd)
            if stat.S_ISDIR(_lstat_mode(parent, parts[-1])):
                raise InvalidRequest(f"{path} is a directory.", {"path": path})
            os.rename(tmp, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
        except OSError as exc:
            raise os_error(exc, path) from None
        finally:
            with suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=parent)
    return size


def _lstat_mode(parent: int, name: str) -> int:
    try:
        return os.lstat(name, dir_fd=parent).st_mode
    except FileNotFoundError:
        return 0


def mkdir(root: Path, path: str) -> None:
    """Make ``path`` and its missing parents; an existing directory is fine."""
    parts = relative(path)
    for i in range(1, len(parts) + 1):
        with dir_fd(root, parts[: i - 1], path) as parent:
            try:
                os.mkdir(parts[i - 1], 0o755, dir_fd=parent)
            except FileExistsError:
                existing = _lstat_mode(parent, parts[i - 1])
                if stat.S_ISLNK(existing):
                    raise os_error(OSError(errno.ELOOP, "symbolic link"), path) from None
                if not stat.S_ISDIR(existing):
                    raise InvalidRequest(f"{path} exists and is not a directory.", {"path": path}) from None
            except OSError as exc:
                raise os_error(exc, path) from None


def remove(root: Path, path: str, recursive: bool) -> None:
    parts = relative(path)
    if not parts:
        raise InvalidPath("Refusing to remove /workspace itself; use the wipe_state action.")
    with dir_fd(root, parts[:-1], path) as parent:
        name = parts[-1]
        try:
            if not stat.S_ISDIR(os.lstat(name, dir_fd=parent).st_mode):
                os.unlink(name, dir_fd=parent)
            elif recursive:
                shutil.rmtree(name, dir_fd=parent)  # fd-based: never follows symlinks
            else:
                os.rmdir(name, dir_fd=parent)
        except OSError as exc:
            raise os_error(exc, path) from None
