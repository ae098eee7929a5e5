"""Volumes on this host: one btrfs subvolume each in the instance's pool (``P/volumes/<id>``), its
size enforced by a simple quota on the subvolume (a write past it fails with EDQUOT in the shell).

A volume is not part of any shell's disk: shells bind it (idmapped, ``runtime/container``), it
outlives them, and only deleting the volume removes its subvolume. Files are stored unshifted, like
a shell's /workspace, so any shell sees them owned by its own root."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import anyio

from .host import btrfs_quota
from .host.btrfs import BtrfsPool


class HostVolumes(Protocol):
    async def create(self, volume_id: str, size_bytes: int) -> None: ...

    async def delete(self, volume_id: str) -> None: ...

    def source(self, volume_id: str) -> Path:
        """The host directory a shell binds."""
        ...

    def used_bytes(self, volume_id: str) -> int | None: ...


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

    def used_bytes(self, volume_id: str) -> int | None:
        path = self.source(volume_id)
        return btrfs_quota.subvolume_usage(path) if path.exists() else None
