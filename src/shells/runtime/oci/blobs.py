"""Image blobs on the host, by digest: ``<dir>/sha256/<hex>``, shared by every instance on the host.

A blob enters only after its digest was checked (``RegistryClient.blob_to_file`` writes to a partial
file that is renamed into place), so a name is proof of its content and a layer is downloaded once
however many images or imports use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL_MAX_AGE_S = 24 * 3600.0


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def sweep_partials(self, older_than_s: float = PARTIAL_MAX_AGE_S) -> None:
        """Remove partial files a crashed download or export left (old enough that no running
        instance on the host is still writing them)."""
        cutoff = time.time() - older_than_s
        for partial in self.root.glob("**/.*"):
            with contextlib.suppress(FileNotFoundError):
                if partial.is_file() and partial.stat().st_mtime < cutoff:
                    partial.unlink()

    def path(self, digest: str) -> Path:
        algo, _, hexpart = digest.partition(":")
        return self.root / algo / hexpart

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    @contextmanager
    def writing(self, digest: str) -> Iterator[Path]:
        """A partial file to fill with blob ``digest``; published when the block ends without error
        (the caller has checked the digest), removed otherwise."""
        final = self.path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".{final.name}.{os.getpid()}-{os.urandom(4).hex()}")
        try:
            yield partial
            partial.rename(final)
        finally:
            partial.unlink(missing_ok=True)

    def put_file(self, source: Path) -> tuple[str, int]:
        """Move ``source`` (a file next to the store, e.g. a packed layer) in under its digest."""
        hasher = hashlib.sha256()
        with source.open("rb") as data:
            while chunk := data.read(1 << 20):
                hasher.update(chunk)
        digest = "sha256:" + hasher.hexdigest()
        final = self.path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        size = source.stat().st_size
        source.rename(final)
        return digest, size

    def put_bytes(self, body: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if not self.has(digest):
            with self.writing(digest) as partial:
                partial.write_bytes(body)
        return digest
