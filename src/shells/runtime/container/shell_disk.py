"""A container shell's disk: its subvolumes in the pool, one quota group over them, and its log.

``P/shells/<id>/`` holds three subvolumes: ``rootfs`` (a writable snapshot of the template or of a
snapshot), ``workspace`` and ``log`` (the agent's stdout and stderr, written by whatever the
template's ``python3`` is, so the shell's own). They are the members of one btrfs simple-quota group
limited to the shape's disk: everything the shell can make the host store is counted there, and a
write past it fails inside the shell with EDQUOT. Only what the shell writes counts (squota charges
an extent to the subvolume that wrote it), not what it shares with its template or snapshot.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ...domain.shapes import Shape
from ..backend import read_tail
from ..host import btrfs_quota
from ..host.btrfs import BtrfsPool

log = logging.getLogger(__name__)

SUBVOLUMES = ("rootfs", "workspace", "log")
LOG_MAX_BYTES = 8 << 20
"""The log has a limit of its own too, so a chatty agent cannot fill the shell's disk with it (a
write past it fails); each start keeps only the last LOG_KEPT_BYTES of the runs before, so every run
has room."""
LOG_KEPT_BYTES = 64 << 10


class ShellDisk:
    def __init__(self, pool: BtrfsPool) -> None:
        self.pool = pool

    def dir(self, host_id: str) -> Path:
        return self.pool.mount_dir / "shells" / host_id

    def log(self, host_id: str) -> Path:
        return self.dir(host_id) / "log" / "agent.log"

    def limit(self, host_id: str, shape: Shape) -> None:
        """Put the shell's subvolumes in its group, limited to the shape's disk, before it runs.

        Nothing writes to a shell that is not running, so doing it at every start covers each new
        subvolume (create, restore from a snapshot, reinstall_os, wipe_state) and a shape change.
        """
        log_dir = self.log(host_id).parent
        if not self.pool.is_subvolume(log_dir):
            self.pool.create_subvolume(log_dir)
        members = [self.dir(host_id) / sub for sub in SUBVOLUMES]
        btrfs_quota.limit_group(self.pool.mount_dir, host_id, members, shape.disk_bytes)
        btrfs_quota.limit_subvolume(log_dir, LOG_MAX_BYTES)
        keep_tail(self.log(host_id), LOG_KEPT_BYTES)

    def delete_subvolume(self, host_id: str, name: str) -> None:
        """Delete one of the shell's subvolumes (idempotent), out of its group first: what it wrote
        that a snapshot still holds then no longer counts against the shell."""
        subvolume = self.dir(host_id) / name
        if self.pool.is_subvolume(subvolume):
            btrfs_quota.leave_group(self.pool.mount_dir, host_id, subvolume)
            self.pool.delete_subvolume(subvolume)

    def delete(self, host_id: str) -> None:
        """Delete every subvolume of the shell and its group (idempotent); the directory stays."""
        for name in SUBVOLUMES:
            self.delete_subvolume(host_id, name)
        try:
            btrfs_quota.remove_group(self.pool.mount_dir, host_id)
        except OSError as exc:  # a member deleted before it left (a crash): the kernel drops it later
            log.warning("quota group of %s kept: %s", host_id, exc.strerror)


def keep_tail(path: Path, max_bytes: int) -> None:
    """Cut the file at ``path`` (if any) to its last ``max_bytes``; nothing may be writing to it.

    The file is deleted and the deletion committed before the tail is written back: a log at its
    limit has no room for even the tail until its space is released.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size <= max_bytes:
        return
    tail = read_tail(path, max_bytes)
    path.unlink()
    btrfs_quota.commit(path.parent)
    path.write_bytes(tail)
