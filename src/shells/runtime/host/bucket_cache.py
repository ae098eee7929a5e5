"""Bucket mounts of one isolation class on this host: one rclone process each (``bucket_fuse``),
its write cache and log in a btrfs subvolume ``<root>/<host_id>-<index>`` with a quota.

Shared by the container class (which binds the served directory into the container) and the microvm
class (which shares it into the guest with virtio-fs); each has its own ``root``, so one's start-up
clean-up never touches the other's mounts."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from ...domain.limits import MOUNT_CACHE_BYTES
from ...domain.mounts import BucketMount
from . import btrfs_quota, bucket_fuse
from .btrfs import BtrfsPool

log = logging.getLogger(__name__)

UNSENT = "unsent"
"""Marks a bucket mount's cache that still holds writes its bucket has not taken."""


class BucketCaches:
    def __init__(self, pool: BtrfsPool, root: Path) -> None:
        self.pool = pool
        self.root = root

    def cache(self, host_id: str, index: int) -> Path:
        return self.root / f"{host_id}-{index}"

    def of(self, host_id: str) -> Iterator[tuple[int, Path]]:
        """The shell's caches: (index, cache directory)."""
        for cache in sorted(self.root.glob(f"{host_id}-*")):
            index = cache.name.rpartition("-")[2]
            yield (int(index) if index.isdigit() else 0), cache

    def every(self) -> Iterator[tuple[str, int, Path]]:
        """Every cache of the class: (host id, index, cache directory)."""
        for cache in sorted(self.root.iterdir()) if self.root.exists() else []:
            host_id, _, index = cache.name.rpartition("-")
            yield host_id, (int(index) if index.isdigit() else 0), cache

    def mount(self, host_id: str, index: int, bucket: BucketMount, mountpoint: Path, uid: int) -> None:
        """Serve ``bucket`` at ``mountpoint`` (files owned by ``uid``); it first sends what an earlier
        run left unsent in its cache."""
        cache = self.cache(host_id, index)
        if not self.pool.is_subvolume(cache):
            self.root.mkdir(exist_ok=True)
            self.pool.create_subvolume(cache)
        btrfs_quota.limit_subvolume(cache, MOUNT_CACHE_BYTES)
        bucket_fuse.mount(bucket, mountpoint, cache, uid)
        (cache / UNSENT).unlink(missing_ok=True)

    def unmount(self, host_id: str, index: int, mountpoint: Path) -> None:
        """Unmount one bucket mount once its writes reached the bucket. A cache still holding writes
        the bucket did not take (it was unreachable) is kept, marked, for the next start to send;
        ``drop`` removes it."""
        cache = self.cache(host_id, index)
        sent = bucket_fuse.flush(cache)
        bucket_fuse.unmount(mountpoint, cache)
        if not sent:
            (cache / UNSENT).touch()
            log.warning(
                "bucket mount %d of %s: writes not in the bucket yet, kept for its next start", index, host_id
            )
        elif not (cache / UNSENT).exists() and self.pool.is_subvolume(cache):
            self.pool.delete_subvolume(cache)

    def drop(self, host_id: str) -> None:
        """Delete the shell's caches, unsent writes and all (the shell is being destroyed)."""
        for _, cache in self.of(host_id):
            if self.pool.is_subvolume(cache):
                self.pool.delete_subvolume(cache)
