"""A writer for the ``newc`` cpio format, the one the Linux kernel unpacks as an initramfs.

Small on purpose: regular files, directories and symlinks, all owned by root, no hard links.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass

_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    path: str
    """Relative to the archive root, without a leading slash."""
    mode: int
    """Full ``st_mode`` (type bits and permissions)."""
    data: bytes = b""
    """File content, or the target of a symlink."""


def file(path: str, data: bytes, perm: int = 0o644) -> Entry:
    return Entry(path, stat.S_IFREG | perm, data)


def directory(path: str, perm: int = 0o755) -> Entry:
    return Entry(path, stat.S_IFDIR | perm)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, target.encode())


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _record(ino: int, entry: Entry) -> bytes:
    name = entry.path.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = (ino, entry.mode, 0, 0, nlink, 0, len(entry.data), 0, 0, 0, 0, len(name), 0)
    header = _MAGIC + b"".join(b"%08X" % value for value in fields)
    head = header + name
    return head + _pad(len(head)) + entry.data + _pad(len(entry.data))


def newc(entries: list[Entry]) -> bytes:
    """The archive holding ``entries`` in order (parents must come before their children)."""
    parts = [_record(ino, entry) for ino, entry in enumerate(entries, start=1)]
    parts.append(_record(0, Entry(_TRAILER, 0)))
    return b"".join(parts)
