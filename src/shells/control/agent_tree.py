"""A shell's /workspace read through its agent, for workspace sync of a class whose /workspace the
host does not read on its own disk: a microvm's is an ext4 filesystem inside its disk image, which
the host never mounts or parses (docs/storage.md).

The agent belongs to the guest, so everything it answers is hostile input. The host builds every
path itself from names it checked (one component, UTF-8, not ``.`` or ``..``, short enough to be a
key), counts directories and files against a cap, takes the size and time a listing claims only as
the mark of a change, and reads each file with a byte cap it enforces on what arrives
(``AgentClient.read_file``) into an anonymous spool file of its own under the data directory. A
lying agent can make only its own bucket's content wrong: never more of the host's disk than one
capped file at a time, nor a key outside the shell's prefix."""

from __future__ import annotations

import math
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import BinaryIO, cast

from ..domain.paths import WORKSPACE
from ..runtime.backend import Backend
from ..runtime.host.tree_scan import TooManyFiles, TreeScan

NAME_MAX_BYTES = 255


def _usable(name: str) -> bool:
    if name in ("", ".", "..") or "/" in name or "\x00" in name:
        return False
    try:
        return len(name.encode("utf-8")) <= NAME_MAX_BYTES
    except UnicodeEncodeError:  # a lone surrogate the JSON carried
        return False


async def scan(
    backend: Backend, host_id: str, max_entries: int, max_path_bytes: int, max_file_bytes: int
) -> TreeScan:
    """Every regular file below the shell's /workspace as its agent lists it: relative path →
    (size, mtime in ns). TooManyFiles once directories and files together pass ``max_entries``;
    links, devices, bad names, paths longer than ``max_path_bytes`` and files that claim more than
    ``max_file_bytes`` are skipped."""
    found = TreeScan()
    pending = [""]
    seen = 0
    while pending:
        prefix = pending.pop()
        directory = WORKSPACE + ("/" + prefix.rstrip("/") if prefix else "")
        for entry in await backend.list_dir(host_id, directory):
            seen += 1
            if seen > max_entries:
                raise TooManyFiles(f"more than {max_entries} files and directories")
            rel = prefix + entry.name
            if not _usable(entry.name) or len(rel.encode("utf-8")) > max_path_bytes:
                found.skipped += 1
            elif entry.kind == "dir":
                pending.append(rel + "/")
            elif entry.kind == "file" and 0 <= entry.size <= max_file_bytes and math.isfinite(entry.mtime):
                found.files[rel] = (entry.size, int(entry.mtime * 1_000_000_000))
            else:
                found.skipped += 1
    return found


@asynccontextmanager
async def spooled(
    backend: Backend, host_id: str, rel: str, max_bytes: int, spool_dir: Path
) -> AsyncIterator[BinaryIO]:
    """The file ``/workspace/<rel>`` copied out of the shell into a spool file (gone when the block
    ends, and at once on a crash: it has no name); PayloadTooLarge past ``max_bytes``."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=spool_dir) as f:
        reading = cast(AsyncGenerator[bytes], backend.read_file(host_id, f"{WORKSPACE}/{rel}", max_bytes))
        async with aclosing(reading) as chunks:
            async for chunk in chunks:
                f.write(chunk)
        f.seek(0)
        yield f
