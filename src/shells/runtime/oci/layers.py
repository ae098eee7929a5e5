"""Apply an image layer (a tar, maybe compressed) onto a root filesystem tree, safely.

The tree is a scratch subvolume no shell can reach, but a layer is hostile input: every path is
resolved with the tree's root as ``/`` (``openat2(RESOLVE_IN_ROOT)``), so a symlink from this or an
earlier layer can point anywhere yet nothing is ever written outside the tree; the last component is
created or replaced without following it. An entry with an absolute path or a ``..`` component, a
device node, an owner outside the shell's 65536 ids, or a hard link to something the tree lacks is
``ImageRejected`` naming the layer and the entry.

OCI semantics: ``.wh.NAME`` removes ``NAME`` from the layers below; ``.wh..wh..opq`` empties its
directory of what the layers below put there (entries of the same layer stay). Owners, modes
(setuid/setgid/sticky included), symlinks, hard links, modification times and the xattrs a shell
can use (``user.*``, ``security.capability``) are kept.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ...domain.errors import ImageRejected
from ...domain.limits import OCI_MAX_ENTRIES, OCI_UNPACKED_MAX_BYTES
from ..host import _libc

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
MAX_ID = 65535
"""Owners must fit the shell's uid block (ids 0..65535 inside)."""
XATTR_PREFIXES = ("user.", "security.capability")
_RESOLVE = _libc.RESOLVE_IN_ROOT | _libc.RESOLVE_NO_MAGICLINKS | _libc.RESOLVE_NO_XDEV
_COPY = 1 << 20


@dataclass
class Budget:
    """What all layers of one image may unpack to, counted across layers."""

    bytes_left: int = OCI_UNPACKED_MAX_BYTES
    entries_left: int = OCI_MAX_ENTRIES


@dataclass
class _Layer:
    root_fd: int
    name: str
    budget: Budget
    made: set[str] = field(default_factory=set)
    """Paths this layer created: an opaque marker keeps them."""

    def reject(self, entry: str, why: str) -> ImageRejected:
        return ImageRejected(
            f"{self.name}: entry {entry!r} {why}; the image was not imported.",
            {"layer": self.name, "entry": entry},
        )


def apply_layer(blob: Path, compression: str, root: Path, name: str, budget: Budget) -> None:
    """Apply the layer in ``blob`` (``gzip``, ``zstd`` or ``none``) onto the tree ``root``."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    layer = _Layer(root_fd, name, budget)
    try:
        with _tar_stream(blob, compression, name) as tar:
            try:
                for member in tar:
                    _apply(layer, tar, member)
            except (tarfile.TarError, EOFError, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                    raise
                raise ImageRejected(
                    f"{name} is not a readable tar archive: {exc}.", {"layer": name}
                ) from None
    finally:
        os.close(root_fd)


@contextlib.contextmanager
def _tar_stream(blob: Path, compression: str, name: str) -> Iterator[tarfile.TarFile]:
    """The layer's entries as a stream (tarfile reads zstd only from Python 3.14: ``zstd -dc``)."""
    with contextlib.ExitStack() as stack:
        raw: IO[bytes] = stack.enter_context(blob.open("rb"))
        if compression == "zstd":
            proc = stack.enter_context(subprocess.Popen(["zstd", "-dcq"], stdin=raw, stdout=subprocess.PIPE))
            stack.callback(proc.kill)
            assert proc.stdout is not None
            raw = proc.stdout
        try:
            if compression == "gzip":
                tar = tarfile.open(fileobj=raw, mode="r|gz")  # noqa: SIM115 (closed below)
            else:
                tar = tarfile.open(fileobj=raw, mode="r|")  # noqa: SIM115 (closed below)
        except (tarfile.TarError, OSError) as exc:
            raise ImageRejected(f"{name} is not a readable tar archive: {exc}.", {"layer": name}) from None
        with tar:
            yield tar


def _clean(layer: _Layer, raw: str) -> list[str]:
    """The components of a member path, or ImageRejected if it is absolute or climbs."""
    if raw.startswith("/"):
        raise layer.reject(raw, "has an absolute path")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise layer.reject(raw, "climbs out with '..'")
    if "\0" in raw:
        raise layer.reject(raw, "holds a NUL byte")
    return parts


def _open_dir(layer: _Layer, parts: list[str], raw: str, *, create: bool) -> int:
    """An fd of the directory ``parts`` inside the tree (symlinks resolved inside it), made with mode
    0755 where missing when ``create``."""
    flags = os.O_RDONLY | os.O_DIRECTORY
    try:
        return _libc.openat2(layer.root_fd, "/".join(parts) or ".", flags, _RESOLVE)
    except FileNotFoundError:
        if not create:
            raise
    fd = os.dup(layer.root_fd)
    try:
        for i, part in enumerate(parts):
            try:
                nxt = _libc.openat2(layer.root_fd, "/".join(parts[: i + 1]), flags, _RESOLVE)
            except FileNotFoundError:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:  # a dangling symlink: its target would be outside the tree's view
                    raise layer.reject(
                        raw, f"needs directory {'/'.join(parts[: i + 1])}, a dangling link"
                    ) from None
                nxt = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return fd
    except NotADirectoryError:
        os.close(fd)
        raise layer.reject(raw, "is below something that is not a directory") from None
    except BaseException:
        os.close(fd)
        raise


def _remove(dir_fd: int, name: str) -> None:
    """Remove ``name`` in ``dir_fd`` (a whole tree if a directory) without following links."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def _apply(layer: _Layer, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    layer.budget.entries_left -= 1
    if layer.budget.entries_left < 0:
        raise layer.reject(member.name, f"is past the limit of {OCI_MAX_ENTRIES} entries per image")
    parts = _clean(layer, member.name)
    if not parts:
        return  # the root itself: its metadata is the tree's own
    base = parts[-1]
    parents = parts[:-1]
    if member.ischr() or member.isblk():
        raise layer.reject(member.name, "is a device node, which no shell may have")
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk() or member.isfifo()):
        raise layer.reject(member.name, f"has an unsupported type {member.type!r}")
    if member.uid > MAX_ID or member.gid > MAX_ID:
        raise layer.reject(member.name, f"is owned by {member.uid}:{member.gid}, outside 0..{MAX_ID}")
    if base == OPAQUE:
        _opaque(layer, parents, member.name)
        return
    if base.startswith(WHITEOUT):
        target = base[len(WHITEOUT) :]
        if target in ("", ".", ".."):
            raise layer.reject(member.name, "is a whiteout of nothing")
        with _closing(_try_open_dir(layer, parents, member.name)) as fd:
            if fd is not None:
                _remove(fd, target)
        return
    fd = _open_dir(layer, parents, member.name, create=True)
    try:
        _make(layer, tar, member, fd, base, parts)
    finally:
        os.close(fd)
    layer.made.add("/".join(parts))


def _try_open_dir(layer: _Layer, parts: list[str], raw: str) -> int | None:
    try:
        return _open_dir(layer, parts, raw, create=False)
    except (FileNotFoundError, NotADirectoryError):
        return None


@contextlib.contextmanager
def _closing(fd: int | None) -> Iterator[int | None]:
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _opaque(layer: _Layer, parents: list[str], raw: str) -> None:
    prefix = "/".join(parents)
    with _closing(_try_open_dir(layer, parents, raw)) as fd:
        if fd is None:
            return
        for name in os.listdir(fd):  # noqa: PTH208 (a directory fd: no path to follow)
            if f"{prefix}/{name}".lstrip("/") not in layer.made:
                _remove(fd, name)


def _make(
    layer: _Layer, tar: tarfile.TarFile, member: tarfile.TarInfo, fd: int, base: str, parts: list[str]
) -> None:
    try:
        existing: os.stat_result | None = os.stat(base, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        existing = None
    if existing is not None and not (member.isdir() and stat.S_ISDIR(existing.st_mode)):
        _remove(fd, base)
    if member.isdir():
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            os.mkdir(base, 0o700, dir_fd=fd)
        _meta(fd, base, member)
    elif member.issym():
        os.symlink(member.linkname, base, dir_fd=fd)
        os.chown(base, member.uid, member.gid, dir_fd=fd, follow_symlinks=False)
        os.utime(base, ns=(int(member.mtime * 1e9),) * 2, dir_fd=fd, follow_symlinks=False)
    elif member.islnk():
        _hard_link(layer, member, fd, base)
    elif member.isfifo():
        os.mkfifo(base, 0o600, dir_fd=fd)
        _meta(fd, base, member)
    else:
        _write_file(layer, tar, member, fd, base)


def _hard_link(layer: _Layer, member: tarfile.TarInfo, fd: int, base: str) -> None:
    target = _clean(layer, member.linkname)
    if not target:
        raise layer.reject(member.name, "is a hard link to the root")
    try:
        src_fd = _open_dir(layer, target[:-1], member.name, create=False)
    except (FileNotFoundError, NotADirectoryError):
        raise layer.reject(
            member.name, f"is a hard link to {member.linkname!r}, which is not there"
        ) from None
    try:
        os.link(target[-1], base, src_dir_fd=src_fd, dst_dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        raise layer.reject(
            member.name, f"is a hard link to {member.linkname!r}, which is not there"
        ) from None
    except PermissionError:
        raise layer.reject(member.name, f"is a hard link to {member.linkname!r}, a directory") from None
    finally:
        os.close(src_fd)


def _write_file(layer: _Layer, tar: tarfile.TarFile, member: tarfile.TarInfo, fd: int, base: str) -> None:
    layer.budget.bytes_left -= member.size
    if layer.budget.bytes_left < 0:
        raise layer.reject(member.name, f"takes the image past {OCI_UNPACKED_MAX_BYTES} unpacked bytes")
    out = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=fd)
    try:
        data: IO[bytes] | None = tar.extractfile(member)
        if data is not None:
            while chunk := data.read(_COPY):
                os.write(out, chunk)
        _meta_fd(out, member)
    finally:
        os.close(out)


def _meta(fd: int, base: str, member: tarfile.TarInfo) -> None:
    node = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=fd)
    try:
        _meta_fd(node, member)
    finally:
        os.close(node)


def _meta_fd(node: int, member: tarfile.TarInfo) -> None:
    """Owner first (chown clears setuid), then the mode, xattrs and times."""
    os.fchown(node, member.uid, member.gid)
    os.fchmod(node, member.mode & 0o7777)
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            attr = key[len("SCHILY.xattr.") :]
            if attr.startswith(XATTR_PREFIXES):
                os.setxattr(node, attr, value.encode("utf-8", "surrogateescape"))
    mtime = int(member.mtime * 1e9)
    os.utime(node, ns=(mtime, mtime))


def make_dirs(root: Path, path: str) -> None:
    """Make the directory ``path`` (absolute inside the tree) and its parents where missing, mode
    0755, resolving the tree's links inside it, as a layer's entries are."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    layer = _Layer(root_fd, "the image's directories", Budget())
    try:
        os.close(_open_dir(layer, _clean(layer, path.lstrip("/")), path, create=True))
    finally:
        os.close(root_fd)


def read_inside(root: Path, path: str, limit: int) -> bytes | None:
    """The first ``limit`` bytes of file ``path`` of the tree (links resolved inside it), or None."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fd = _libc.openat2(root_fd, path.lstrip("/"), os.O_RDONLY | os.O_NONBLOCK, _RESOLVE)
    except OSError:
        return None
    finally:
        os.close(root_fd)
    try:
        return os.read(fd, limit) if stat.S_ISREG(os.fstat(fd).st_mode) else None
    finally:
        os.close(fd)
