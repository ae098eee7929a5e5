"""The regular files below a directory a shell can write, listed by the host without following
any of the shell's links: every directory is entered from its parent's fd with ``O_NOFOLLOW``, and
entries are ``lstat``-ed, so a link to ``/etc`` or a directory swapped for one mid-walk is never
crossed. Reading a file goes through ``wasm.workspace_fs.open_file``, which walks the same way."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class TooManyFiles(Exception):
    """The tree holds more regular files than the caller allows."""


@dataclass
class TreeScan:
    files: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Relative path (``a/b.txt``) → (size, mtime in ns)."""
    skipped: int = 0
    """Entries left out: links, devices, sockets, names that are not UTF-8."""


def scan(root: Path, max_files: int) -> TreeScan:
    """Every regular file below ``root`` (raises TooManyFiles past ``max_files``)."""
    found = TreeScan()
    pending: list[tuple[str, int]] = [("", os.open(root, _DIR_FLAGS))]
    try:
        while pending:
            prefix, fd = pending.pop()
            try:
                _scan_dir(fd, prefix, found, pending, max_files)
            finally:
                os.close(fd)
    finally:
        for _, fd in pending:
            os.close(fd)
    return found


def _scan_dir(fd: int, prefix: str, found: TreeScan, pending: list[tuple[str, int]], max_files: int) -> None:
    with os.scandir(fd) as entries:
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
                entry.name.encode("utf-8")
            except (OSError, UnicodeEncodeError):
                found.skipped += 1
                continue
            rel = prefix + entry.name
            if stat.S_ISDIR(st.st_mode):
                try:
                    pending.append((rel + "/", os.open(entry.name, _DIR_FLAGS, dir_fd=fd)))
                except OSError:  # gone, or swapped for a link since the listing
                    found.skipped += 1
            elif stat.S_ISREG(st.st_mode):
                found.files[rel] = (st.st_size, st.st_mtime_ns)
                if len(found.files) > max_files:
                    raise TooManyFiles(f"more than {max_files} files")
            else:
                found.skipped += 1
