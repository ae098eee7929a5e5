"""btrfs quota groups: a size limit on one subvolume, through the ioctls (no ``btrfs`` process).

WASI has no notion of disk quota, so the wasm class limits each shell's /workspace subvolume with a
qgroup limit: a write past it fails with EDQUOT inside the guest.

The pool runs *simple* quotas (squota, Linux 6.7+): every extent is charged to the subvolume that
wrote it, at allocation. Full qgroups walk back-references instead, and the kernel gives up on that
(marks the accounting inconsistent, after which limits stop holding) when a large subvolume such as
a template is deleted; squota has no such case. The cost: a snapshot's shared extents stay charged
to their writer, so a shell made from a snapshot is limited in what it writes itself.

A container shell has several subvolumes (its root filesystem, /workspace, its log) and one limit on
what they write together: a level-1 qgroup (``group``) whose members they are.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

from .btrfs import _IOC_READ, _IOC_WRITE, _ioc

BTRFS_QUOTA_CTL_ENABLE = 1
BTRFS_QUOTA_CTL_DISABLE = 2
BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA = 4
BTRFS_QGROUP_LIMIT_MAX_RFER = 1 << 0


class QuotaCtlArgs(ctypes.Structure):
    """struct btrfs_ioctl_quota_ctl_args."""

    _fields_ = [("cmd", ctypes.c_uint64), ("status", ctypes.c_uint64)]


class QgroupLimitArgs(ctypes.Structure):
    """struct btrfs_ioctl_qgroup_limit_args: qgroup id (0 = the fd's subvolume) and btrfs_qgroup_limit."""

    _fields_ = [
        ("qgroupid", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("max_rfer", ctypes.c_uint64),
        ("max_excl", ctypes.c_uint64),
        ("rsv_rfer", ctypes.c_uint64),
        ("rsv_excl", ctypes.c_uint64),
    ]


class QgroupAssignArgs(ctypes.Structure):
    """struct btrfs_ioctl_qgroup_assign_args: make qgroup ``src`` a member of ``dst`` (or stop)."""

    _fields_ = [("assign", ctypes.c_uint64), ("src", ctypes.c_uint64), ("dst", ctypes.c_uint64)]


class QgroupCreateArgs(ctypes.Structure):
    """struct btrfs_ioctl_qgroup_create_args: create (1) or destroy (0) qgroup ``qgroupid``."""

    _fields_ = [("create", ctypes.c_uint64), ("qgroupid", ctypes.c_uint64)]


class InoLookupArgs(ctypes.Structure):
    """struct btrfs_ioctl_ino_lookup_args: with tree id 0 and the root's inode, the fd's subvolume id."""

    _fields_ = [("treeid", ctypes.c_uint64), ("objectid", ctypes.c_uint64), ("name", ctypes.c_char * 4080)]


BTRFS_IOC_SYNC = _ioc(0, 8, 0)
BTRFS_IOC_INO_LOOKUP = _ioc(_IOC_READ | _IOC_WRITE, 18, ctypes.sizeof(InoLookupArgs))
BTRFS_IOC_QUOTA_CTL = _ioc(_IOC_READ | _IOC_WRITE, 40, ctypes.sizeof(QuotaCtlArgs))
BTRFS_IOC_QGROUP_ASSIGN = _ioc(_IOC_WRITE, 41, ctypes.sizeof(QgroupAssignArgs))
BTRFS_IOC_QGROUP_CREATE = _ioc(_IOC_WRITE, 42, ctypes.sizeof(QgroupCreateArgs))
BTRFS_IOC_QGROUP_LIMIT = _ioc(_IOC_READ, 43, ctypes.sizeof(QgroupLimitArgs))
BTRFS_IOC_FS_INFO = _ioc(_IOC_READ, 31, 1024)
FSID_OFFSET = 16


BTRFS_FIRST_FREE_OBJECTID = 256
QGROUP_LEVEL_SHIFT = 48


def _ioctl(path: Path, request: int, args: ctypes.Structure | ctypes.Array[ctypes.c_char]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, request, args)
    finally:
        os.close(fd)


def _ioctl_tolerating(path: Path, request: int, args: ctypes.Structure, ok: int) -> None:
    """``_ioctl`` where the errno ``ok`` means the wanted state already holds."""
    try:
        _ioctl(path, request, args)
    except OSError as exc:
        if exc.errno != ok:
            raise


def _qgroups_dir(mount_dir: Path) -> Path:
    """The kernel's view of the filesystem's qgroups in sysfs (absent while quotas are off)."""
    info = ctypes.create_string_buffer(1024)
    _ioctl(mount_dir, BTRFS_IOC_FS_INFO, info)
    fsid = uuid.UUID(bytes=info.raw[FSID_OFFSET : FSID_OFFSET + 16])
    return Path("/sys/fs/btrfs") / str(fsid) / "qgroups"


def quota_mode(mount_dir: Path) -> str:
    """``squota``, ``qgroup`` (full accounting) or ``disabled``, as the kernel reports it."""
    qgroups = _qgroups_dir(mount_dir)
    if not qgroups.is_dir():
        return "disabled"
    mode = qgroups / "mode"
    return mode.read_text(encoding="utf-8").strip() if mode.exists() else "qgroup"


def enable_simple_quota(mount_dir: Path) -> str:
    """Make the filesystem run simple quotas (idempotent); returns the mode now in force. A pool
    with full qgroups is switched (its limits are dropped: the caller sets them again). A kernel
    without squota keeps full qgroups."""
    mode = quota_mode(mount_dir)
    if mode == "squota":
        return mode
    if mode != "disabled":
        _ioctl(mount_dir, BTRFS_IOC_QUOTA_CTL, QuotaCtlArgs(cmd=BTRFS_QUOTA_CTL_DISABLE))
    try:
        _ioctl(mount_dir, BTRFS_IOC_QUOTA_CTL, QuotaCtlArgs(cmd=BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA))
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
            raise
        _ioctl(mount_dir, BTRFS_IOC_QUOTA_CTL, QuotaCtlArgs(cmd=BTRFS_QUOTA_CTL_ENABLE))
    return quota_mode(mount_dir)


def limit_subvolume(subvolume: Path, max_bytes: int) -> None:
    """Limit the bytes ``subvolume`` references (shared extents of a snapshot count too)."""
    args = QgroupLimitArgs(qgroupid=0, flags=BTRFS_QGROUP_LIMIT_MAX_RFER, max_rfer=max_bytes)
    _ioctl(subvolume, BTRFS_IOC_QGROUP_LIMIT, args)


def group_id(name: str) -> int:
    """The level-1 qgroup id of the group ``name`` (a shell's id): 48 bits of its hash."""
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:6], "big")
    return (1 << QGROUP_LEVEL_SHIFT) | digest


def subvolume_id(subvolume: Path) -> int:
    args = InoLookupArgs(treeid=0, objectid=BTRFS_FIRST_FREE_OBJECTID)
    _ioctl(subvolume, BTRFS_IOC_INO_LOOKUP, args)
    return int(args.treeid)


def limit_group(mount_dir: Path, name: str, members: Sequence[Path], max_bytes: int) -> None:
    """Limit what ``members`` (subvolumes) write together to ``max_bytes`` (idempotent): the group
    is made if missing and each member joins it if it has not yet."""
    group = group_id(name)
    _ioctl_tolerating(
        mount_dir, BTRFS_IOC_QGROUP_CREATE, QgroupCreateArgs(create=1, qgroupid=group), errno.EEXIST
    )
    for member in members:
        args = QgroupAssignArgs(assign=1, src=subvolume_id(member), dst=group)
        _ioctl_tolerating(mount_dir, BTRFS_IOC_QGROUP_ASSIGN, args, errno.EEXIST)
    limit = QgroupLimitArgs(qgroupid=group, flags=BTRFS_QGROUP_LIMIT_MAX_RFER, max_rfer=max_bytes)
    _ioctl(mount_dir, BTRFS_IOC_QGROUP_LIMIT, limit)


def group_usage(mount_dir: Path, name: str) -> int | None:
    """Bytes charged to the group ``name`` now (what its members wrote), None if there is none."""
    return _referenced(mount_dir, group_id(name))


def subvolume_usage(subvolume: Path) -> int | None:
    """Bytes charged to ``subvolume``'s own qgroup now, None if quotas are off."""
    return _referenced(subvolume, subvolume_id(subvolume))


def _referenced(path: Path, qgroup: int) -> int | None:
    level, sub = qgroup >> QGROUP_LEVEL_SHIFT, qgroup & ((1 << QGROUP_LEVEL_SHIFT) - 1)
    try:
        return int((_qgroups_dir(path) / f"{level}_{sub}" / "referenced").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None


def leave_group(mount_dir: Path, name: str, member: Path) -> None:
    """Take ``member`` out of the group before it is deleted: what it wrote that a snapshot still
    holds is no longer counted against the group (idempotent)."""
    args = QgroupAssignArgs(assign=0, src=subvolume_id(member), dst=group_id(name))
    _ioctl_tolerating(mount_dir, BTRFS_IOC_QGROUP_ASSIGN, args, errno.ENOENT)


def remove_group(mount_dir: Path, name: str) -> None:
    """Destroy the group once its members have left or are deleted (idempotent)."""
    args = QgroupCreateArgs(create=0, qgroupid=group_id(name))
    _ioctl_tolerating(mount_dir, BTRFS_IOC_QGROUP_CREATE, args, errno.ENOENT)


def commit(path: Path) -> None:
    """Commit the filesystem's transaction: the space of what was deleted counts as free again (the
    quota releases freed extents only at commit, every 30 s by itself)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, BTRFS_IOC_SYNC)
    finally:
        os.close(fd)
