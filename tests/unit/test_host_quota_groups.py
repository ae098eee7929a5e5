"""A container shell's disk limit on a real loop-mounted btrfs pool: one simple-quota group limits what
its subvolumes write together, counts only what they write themselves, and lets a leaving member go."""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import replace
from pathlib import Path

import pytest

from shells.domain.shapes import get_shape
from shells.runtime.container import shell_disk
from shells.runtime.container.shell_disk import ShellDisk
from shells.runtime.host import btrfs_quota
from shells.runtime.host.btrfs import BtrfsPool

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loop mounts, btrfs ioctls)")

MIB = 1 << 20


def test_group_ioctls_match_the_kernel_abi() -> None:
    assert ctypes.sizeof(btrfs_quota.QgroupAssignArgs) == 24
    assert ctypes.sizeof(btrfs_quota.QgroupCreateArgs) == 16
    assert ctypes.sizeof(btrfs_quota.InoLookupArgs) == 4096
    # values from linux/btrfs.h as compiled on x86_64
    assert btrfs_quota.BTRFS_IOC_QGROUP_ASSIGN == 0x40189429
    assert btrfs_quota.BTRFS_IOC_QGROUP_CREATE == 0x4010942A
    assert btrfs_quota.BTRFS_IOC_INO_LOOKUP == 0xD0009412
    assert btrfs_quota.BTRFS_IOC_SYNC == 0x9408


def test_group_ids_are_level_one_and_differ_per_name() -> None:
    a, b = btrfs_quota.group_id("sh_a"), btrfs_quota.group_id("sh_b")
    assert a >> 48 == 1 and b >> 48 == 1 and a != b
    assert btrfs_quota.group_id("sh_a") == a


def _fill(path: Path, limit_mib: int) -> int:
    """Write MiB after MiB into ``path`` until the kernel refuses; returns what was written."""
    written = 0
    with pytest.raises(OSError) as err, path.open("wb") as f:
        while written < 4 * limit_mib * MIB:
            f.write(b"x" * MIB)
            f.flush()
            os.fsync(f.fileno())
            written += MIB
    assert err.value.errno == errno.EDQUOT
    return written


@pytest.fixture
def squota(pool: BtrfsPool) -> BtrfsPool:
    assert btrfs_quota.enable_simple_quota(pool.mount_dir) == "squota"
    return pool


def test_members_share_one_limit_and_a_snapshot_source_is_not_counted(squota: BtrfsPool) -> None:
    top = squota.mount_dir
    template = top / "template"
    squota.create_subvolume(template)
    (template / "big").write_bytes(b"t" * (24 * MIB))  # more than the limit, shared by the copy
    root, ws = top / "g-rootfs", top / "g-workspace"
    squota.snapshot(template, root)
    squota.create_subvolume(ws)
    try:
        btrfs_quota.limit_group(top, "sh_group", [root, ws], 16 * MIB)
        btrfs_quota.limit_group(top, "sh_group", [root, ws], 16 * MIB)  # idempotent
        first = _fill_until(root / "a", 8 * MIB)
        assert first == 8 * MIB
        second = _fill(ws / "b", 16)
        assert second <= 8 * MIB + MIB, "the two members share one limit"
        (ws / "b").unlink()
        os.sync()
        (ws / "c").write_bytes(b"c" * (4 * MIB))  # room again once the file is gone
    finally:
        for sub in (root, ws):
            btrfs_quota.leave_group(top, "sh_group", sub)
            squota.delete_subvolume(sub)
        btrfs_quota.remove_group(top, "sh_group")
        btrfs_quota.remove_group(top, "sh_group")  # idempotent
        squota.delete_subvolume(template)


def test_a_member_that_left_no_longer_counts(squota: BtrfsPool) -> None:
    top = squota.mount_dir
    old, new, snap = top / "l-old", top / "l-new", top / "l-snap"
    squota.create_subvolume(old)
    try:
        btrfs_quota.limit_group(top, "sh_leave", [old], 16 * MIB)
        _fill_until(old / "a", 12 * MIB)
        squota.snapshot(old, snap, readonly=True)  # keeps old's extents charged to old
        btrfs_quota.leave_group(top, "sh_leave", old)
        btrfs_quota.leave_group(top, "sh_leave", old)  # idempotent
        squota.delete_subvolume(old)
        squota.create_subvolume(new)
        btrfs_quota.limit_group(top, "sh_leave", [new], 16 * MIB)
        assert _fill_until(new / "b", 12 * MIB) == 12 * MIB
    finally:
        for sub in (old, new):
            if squota.is_subvolume(sub):
                btrfs_quota.leave_group(top, "sh_leave", sub)
                squota.delete_subvolume(sub)
        btrfs_quota.remove_group(top, "sh_leave")
        squota.delete_subvolume(snap)


def _fill_until(path: Path, size: int) -> int:
    with path.open("wb") as f:
        for _ in range(size // MIB):
            f.write(b"x" * MIB)
        f.flush()
        os.fsync(f.fileno())
    return size


def test_a_container_shells_disk_counts_all_its_subvolumes_and_keeps_a_short_log(
    squota: BtrfsPool,
) -> None:
    disk = ShellDisk(squota)
    shell = disk.dir("sh_disk")
    shell.mkdir(parents=True)
    squota.create_subvolume(shell / "rootfs")
    squota.create_subvolume(shell / "workspace")
    shape = replace(get_shape("s-1vcpu-512mb"), disk_mib=16)
    try:
        disk.limit("sh_disk", shape)
        log = disk.log("sh_disk")
        log.write_bytes(b"old run\n" + b"x" * (shell_disk.LOG_KEPT_BYTES + 100))
        disk.limit("sh_disk", shape)  # the next start
        assert log.stat().st_size == shell_disk.LOG_KEPT_BYTES
        assert _fill(shell / "workspace" / "a", 16) <= 16 * MIB
        with pytest.raises(OSError) as err:
            (shell / "rootfs" / "b").write_bytes(b"y" * MIB)
        assert err.value.errno == errno.EDQUOT
        (shell / "workspace" / "a").unlink()
        os.sync()
        assert _fill(log, 16) <= shell_disk.LOG_MAX_BYTES  # the log has its own, smaller limit
        disk.delete_subvolume("sh_disk", "workspace")  # wipe_state
        squota.create_subvolume(shell / "workspace")
        disk.limit("sh_disk", shape)  # a start after a run that filled its log: room for the next
        assert log.stat().st_size == shell_disk.LOG_KEPT_BYTES
        assert _fill_until(shell / "workspace" / "c", 4 * MIB) == 4 * MIB
        with log.open("ab") as f:
            f.write(b"z" * MIB)
    finally:
        disk.delete("sh_disk")
        disk.delete("sh_disk")  # idempotent
        assert list(shell.iterdir()) == []
        shell.rmdir()
