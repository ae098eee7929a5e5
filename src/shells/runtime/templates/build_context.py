"""A Dockerfile build's context: the uploaded tar unpacked on the host (as safely as an image layer:
no ``..``, no absolute paths, no devices, links resolved inside it), and COPY's sources out of it.

The host never follows a link of the context: sources are walked without following symbolic links,
and a source that is one is refused. What COPY sends into the build shell goes through the guest
agent (``Backend.write_file``), like every file a build writes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import posixpath
import shutil
import stat
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path

from ...domain.dockerfile import Instruction, bad
from ..backend import Backend
from ..oci.layers import Budget, apply_layer

CHUNK = 1 << 20


@dataclass(frozen=True)
class ContextFile:
    """A regular file (or a directory, ``digest`` None) of the context, to put at ``dest``."""

    source: Path
    dest: str
    mode: int
    digest: str | None


class BuildContext:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def unpack(cls, tarball: Path, where: Path) -> BuildContext:
        """Unpack the context ``tarball`` (plain or gzip) into the new directory ``where``."""
        where.mkdir(parents=True)
        with tarball.open("rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        apply_layer(tarball, "gzip" if gz else "none", where, "the build context", Budget())
        return cls(where)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def read_text(self, rel: str, limit: int) -> str | None:
        """A small text file of the context (the Dockerfile), or None if missing or not a file."""
        path = self._inside(rel)
        if path is None or not path.is_file() or path.is_symlink() or path.stat().st_size > limit:
            return None
        return path.read_text(encoding="utf-8", errors="replace")

    def _inside(self, rel: str) -> Path | None:
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if ".." in parts:
            return None
        path = self.root
        for part in parts:
            path = path / part
            if path.is_symlink():
                return None
        return path

    def sources(self, ins: Instruction, patterns: list[str], dest: str, workdir: str) -> list[ContextFile]:
        """What COPY ``patterns`` ``dest`` puts where (Docker's rules: a directory's contents are
        copied into ``dest``; ``dest`` is a directory if it ends in ``/`` or there are several
        sources), each file with its content digest."""
        dest = dest if dest.startswith("/") else posixpath.join(workdir, dest)
        matched: list[Path] = []
        for pattern in patterns:
            parts = [p for p in pattern.split("/") if p not in ("", ".")]
            if ".." in parts:
                raise bad(ins, f"the source {pattern!r} leaves the build context.")
            found = self._glob(parts)
            if not found:
                raise bad(ins, f"the source {pattern!r} is not in the build context.")
            matched += found
        into_dir = dest.endswith("/") or len(matched) > 1 or any(p.is_dir() for p in matched)
        files: list[ContextFile] = []
        for path in matched:
            target = posixpath.join(dest, path.name) if into_dir and not path.is_dir() else dest
            if path.is_dir():
                files += self._walk(ins, path, target)
            else:
                files.append(self._file(ins, path, target))
        return files

    def _glob(self, parts: list[str]) -> list[Path]:
        paths = [self.root]
        for part in parts:
            nxt = []
            for base in paths:
                if not base.is_dir() or base.is_symlink():
                    continue
                if any(c in part for c in "*?["):
                    nxt += sorted(p for p in base.iterdir() if fnmatch.fnmatchcase(p.name, part))
                elif (base / part).exists() or (base / part).is_symlink():
                    nxt.append(base / part)
            paths = nxt
        return paths

    def _walk(self, ins: Instruction, top: Path, dest: str) -> list[ContextFile]:
        files = [ContextFile(top, dest, top.lstat().st_mode & 0o7777, None)]
        for entry in sorted(top.iterdir()):
            target = posixpath.join(dest, entry.name)
            if entry.is_dir() and not entry.is_symlink():
                files += self._walk(ins, entry, target)
            else:
                files.append(self._file(ins, entry, target))
        return files

    def _file(self, ins: Instruction, path: Path, dest: str) -> ContextFile:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode):
            rel = path.relative_to(self.root)
            raise bad(ins, f"{rel} is not a regular file or directory (links are not copied).")
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
        return ContextFile(path, dest, st.st_mode & 0o7777, digest.hexdigest())


def sources_key(files: list[ContextFile]) -> str:
    """What COPY's result depends on: every destination, mode and content."""
    doc = "\n".join(f"{f.dest}\0{f.mode:o}\0{f.digest or 'dir'}" for f in files)
    return hashlib.sha256(doc.encode()).hexdigest()


async def copy_in(backend: Backend, host_id: str, files: list[ContextFile]) -> None:
    """Write ``files`` into the build shell through its agent."""
    for f in files:
        if f.digest is None:
            await backend.mkdir(host_id, f.dest)
            continue
        await backend.mkdir(host_id, posixpath.dirname(f.dest))
        await backend.write_file(host_id, f.dest, _chunks(f.source), f.mode)


async def _chunks(path: Path) -> AsyncIterable[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk
