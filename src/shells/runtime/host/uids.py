"""Host-wide allocation of 65536-id blocks for shells' user namespaces.

Block ``n`` covers host ids ``[n * 65536, (n + 1) * 65536)``. A claim is the file
``<dir>/<n>`` holding ``"<instance>\\n<owner>\\n"``; creating it is atomic, so several Shells instances
on one host (each with its own instance id) never hand out the same block. Blocks are a runtime
thing: rootfs files are stored unshifted and shown shifted through idmapped mounts, so a stopped
shell releases its block and a started one claims whichever is free. ``/run`` is a tmpfs, so claims
vanish with a reboot, together with the shells that held them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

from shells.domain.errors import QuotaExceeded, RuntimeFailure

BLOCK_SIZE = 65536
DEFAULT_DIR = Path("/run/shells/uid-blocks")
FIRST_BLOCK = (1 << 20) // BLOCK_SIZE
"""Lowest block: uid_base 2**20 keeps clear of system users and /etc/subuid's usual 100000+ ranges."""
END_BLOCK = (1 << 31) // BLOCK_SIZE
"""One past the highest block: ids stay below 2**31 (some tools treat larger uids as negative)."""


def uid_base(block: int) -> int:
    return block * BLOCK_SIZE


class UidBlocks:
    """Claims and releases blocks for one Shells instance."""

    def __init__(self, instance: str, directory: Path = DEFAULT_DIR) -> None:
        if not instance or "\n" in instance:
            raise RuntimeFailure(f"uid blocks: unusable instance id {instance!r}")
        self.instance = instance
        self.directory = Path(directory)

    def claim(self, owner: str) -> int:
        """Claim a free block for ``owner`` (a shell id) and return its number.

        Starts at a random block and probes linearly (wrapping), so concurrent instances rarely
        collide and a collision costs one more ``link``. The content is written to a private temp
        file first and then hard-linked into place: link() fails with EEXIST exactly like
        O_CREAT|O_EXCL, but a reader can never see a claim file that is still empty.
        """
        if "\n" in owner:
            raise RuntimeFailure(f"uid blocks: unusable owner id {owner!r}")
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".claim-{os.getpid()}-{secrets.token_hex(6)}"
        tmp.write_text(f"{self.instance}\n{owner}\n")
        try:
            span = END_BLOCK - FIRST_BLOCK
            start = secrets.randbelow(span)
            for step in range(span):
                block = FIRST_BLOCK + (start + step) % span
                try:
                    os.link(tmp, self.directory / str(block))
                except FileExistsError:
                    continue
                except OSError as exc:
                    raise RuntimeFailure(
                        f"uid blocks: claiming block {block} failed: {exc.strerror}"
                    ) from exc
                return block
        finally:
            tmp.unlink(missing_ok=True)
        raise QuotaExceeded(f"every uid block in {self.directory} is claimed; stop some shells first")

    def release(self, block: int) -> None:
        """Release our claim on ``block`` (idempotent). Another instance's block is never touched."""
        path = self.directory / str(block)
        holder = _read(path)
        if holder is None:
            return
        if holder[0] != self.instance:
            raise RuntimeFailure(
                f"uid blocks: block {block} belongs to instance {holder[0]!r}, not {self.instance!r}"
            )
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def claims_of(self, instance: str | None = None) -> dict[int, str]:
        """Block → owner for the blocks claimed by ``instance`` (default: this one), to reconcile."""
        wanted = self.instance if instance is None else instance
        found: dict[int, str] = {}
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return found
        for entry in entries:
            if not entry.name.isdigit():
                continue
            holder = _read(Path(entry.path))
            if holder is not None and holder[0] == wanted:
                found[int(entry.name)] = holder[1]
        return found


def _read(path: Path) -> tuple[str, str] | None:
    try:
        instance, owner, *_ = [*path.read_text().split("\n"), "", ""]
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise RuntimeFailure(f"uid blocks: reading {path} failed: {exc.strerror}") from exc
    return instance, owner
