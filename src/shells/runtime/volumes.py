"""Volumes on this host: one btrfs subvolume each in the instance's pool (``P/volumes/<id>``), its
size enforced by a simple quota on the subvolume (a write past it fails with EDQUOT in the shell).

A volume is not part of any shell's disk: shells bind it (idmapped, ``runtime/container``), it
outlives them, and only deleting the volume removes its subvolume. Files are stored unshifted, like
a shell's /workspace, so any shell sees them owned by its own root.

For the object store (``control/volume_store.py``) each local copy has two marks beside it: the
version of the record it holds (``.<id>.version``), and, while a writer may have changed it since
the last upload, a dirty token (``.<id>.dirty``, a fresh one at every read-write start). A copy is
packed from a read-only snapshot (a writer that starts meanwhile changes nothing in it) and restored
into a hidden subvolume with the quota, renamed into place once complete; the hidden subvolumes a
crash leaves are removed when the process that owns the pool starts again (``remove_leftovers``)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Protocol

import anyio

from ..domain.errors import RuntimeFailure
from .host import btrfs_quota
from .host.btrfs import BtrfsPool
from .images import pack_command, unpack_command

PACKED = "volume.tar.zst"
LEFTOVER = re.compile(r"\.(export|fetch)-[0-9a-f]{8}$")
"""The hidden subvolumes of a pack (``export``) or a fetch (``restore``) under way."""


class HostVolumes(Protocol):
    @property
    def root(self) -> Path:
        """The directory the copies are in (``source`` of each is below it)."""
        ...

    async def create(self, volume_id: str, size_bytes: int) -> None: ...

    async def delete(self, volume_id: str) -> None: ...

    def source(self, volume_id: str) -> Path:
        """The host directory a shell binds."""
        ...

    def used_bytes(self, volume_id: str) -> int | None: ...

    def has(self, volume_id: str) -> bool: ...

    def local_version(self, volume_id: str) -> int:
        """The record version this host's copy holds (0: never uploaded or fetched)."""
        ...

    def set_local_version(self, volume_id: str, version: int) -> None: ...

    def mark_dirty(self, volume_id: str) -> None:
        """A writer may change the copy: it must be uploaded once it is let go."""
        ...

    def dirty_token(self, volume_id: str) -> str | None: ...

    def dirty(self) -> list[str]:
        """The volumes whose copies here are marked dirty."""
        ...

    def clear_dirty(self, volume_id: str, token: str) -> None:
        """Clear the mark if it is still ``token`` (a writer that started since keeps it)."""
        ...

    async def export(self, volume_id: str, dest: Path) -> Path:
        """The copy's files as ``dest/volume.tar.zst``, packed from a read-only snapshot."""
        ...

    def remove_leftovers(self) -> list[str]:
        """Delete the hidden subvolumes a crash left mid-pack or mid-fetch; their names. Only when
        nothing packs or fetches: at the start of the process that owns the disk. Blocking."""
        ...

    async def restore(self, volume_id: str, size_bytes: int, tarball: Path, version: int) -> None:
        """Replace this host's copy (if any) with the files of ``tarball``, which is ``version``."""
        ...


class PoolVolumes:
    def __init__(self, pool: BtrfsPool) -> None:
        self.pool = pool

    @property
    def root(self) -> Path:
        return self.pool.mount_dir / "volumes"

    def source(self, volume_id: str) -> Path:
        return self.root / volume_id

    async def create(self, volume_id: str, size_bytes: int) -> None:
        def make() -> None:
            self.root.mkdir(exist_ok=True)
            path = self.source(volume_id)
            self.pool.create_subvolume(path)
            try:
                btrfs_quota.limit_subvolume(path, size_bytes)
            except BaseException:
                self.pool.delete_subvolume(path)
                raise

        await anyio.to_thread.run_sync(make)

    async def delete(self, volume_id: str) -> None:
        path = self.source(volume_id)
        if self.pool.is_subvolume(path):
            await anyio.to_thread.run_sync(self.pool.delete_subvolume, path)
        for mark in (self._mark(volume_id, "version"), self._mark(volume_id, "dirty")):
            mark.unlink(missing_ok=True)

    def has(self, volume_id: str) -> bool:
        return self.pool.is_subvolume(self.source(volume_id))

    def _mark(self, volume_id: str, kind: str) -> Path:
        return self.root / f".{volume_id}.{kind}"

    def local_version(self, volume_id: str) -> int:
        try:
            return int(self._mark(volume_id, "version").read_text())
        except (OSError, ValueError):
            return 0

    def set_local_version(self, volume_id: str, version: int) -> None:
        _write(self._mark(volume_id, "version"), str(version))

    def mark_dirty(self, volume_id: str) -> None:
        _write(self._mark(volume_id, "dirty"), os.urandom(8).hex())

    def dirty_token(self, volume_id: str) -> str | None:
        try:
            return self._mark(volume_id, "dirty").read_text()
        except OSError:
            return None

    def dirty(self) -> list[str]:
        marks = self.root.glob(".*.dirty") if self.root.exists() else []
        return sorted(m.name[1:].removesuffix(".dirty") for m in marks)

    def clear_dirty(self, volume_id: str, token: str) -> None:
        if self.dirty_token(volume_id) == token:
            self._mark(volume_id, "dirty").unlink(missing_ok=True)

    def remove_leftovers(self) -> list[str]:
        hidden = (
            [p for p in self.root.glob(".vol_*") if LEFTOVER.search(p.name)] if self.root.exists() else []
        )
        removed = []
        for path in hidden:
            if self.pool.is_subvolume(path):
                self.pool.delete_subvolume(path)
                removed.append(path.name)
        return removed

    async def export(self, volume_id: str, dest: Path) -> Path:
        frozen = self.root / f".{volume_id}.export-{os.urandom(4).hex()}"
        await anyio.to_thread.run_sync(
            lambda: self.pool.snapshot(self.source(volume_id), frozen, readonly=True)
        )
        try:
            argv = ["nice", "-n", "19", *pack_command(frozen, dest / PACKED)]
            try:  # a process of ours, as for snapshots: a server that stops kills it
                await anyio.run_process(argv, check=True)
            except subprocess.CalledProcessError as exc:
                raise RuntimeFailure(f"packing volume {volume_id} failed: {exc.stderr[-500:]!r}") from None
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.pool.delete_subvolume, frozen)
        return dest / PACKED

    async def restore(self, volume_id: str, size_bytes: int, tarball: Path, version: int) -> None:
        staging = self.root / f".{volume_id}.fetch-{os.urandom(4).hex()}"

        def make() -> None:
            self.root.mkdir(exist_ok=True)
            self.pool.create_subvolume(staging)
            btrfs_quota.limit_subvolume(staging, size_bytes)

        try:
            await anyio.to_thread.run_sync(make)
            try:
                await anyio.run_process(unpack_command(tarball, staging), check=True)
            except subprocess.CalledProcessError as exc:
                raise RuntimeFailure(f"unpacking volume {volume_id} failed: {exc.stderr[-500:]!r}") from None
            await self.delete(volume_id)  # a stale copy (its version is older than the record's)
            staging.rename(self.source(volume_id))
            self.set_local_version(volume_id, version)
        finally:
            if self.pool.is_subvolume(staging):
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self.pool.delete_subvolume, staging)

    def used_bytes(self, volume_id: str) -> int | None:
        path = self.source(volume_id)
        return btrfs_quota.subvolume_usage(path) if path.exists() else None


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.urandom(4).hex()}")
    partial.write_text(text)
    partial.rename(path)
