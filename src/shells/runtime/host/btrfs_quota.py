"""btrfs quota groups: a size limit on one subvolume, through the ioctls (no ``btrfs`` process).

WASI has no notion of disk quota, so the wasm class limits each shell's /workspace subvolume with a
qgroup limit: a write past it fails with EDQUOT inside the guest.

The pool runs *simple* quotas (squota, Linux 6.7+): every extent is charged to the subvolume that
wrote it, at allocation. Full qgroups walk back-references instead, and the kernel gives up on that
(marks the accounting inconsistent, after which limits stop holding) when a large subvolume such as
a template is deleted; squota has no such case. The cost: a snapshot's shared extents stay charged
to their writer, so a shell made from a snapshot is limited in what it writes itself.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import uuid
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


BTRFS_IOC_QUOTA_CTL = _ioc(_IOC_READ | _IOC_WRITE, 40, ctypes.sizeof(QuotaCtlArgs))
BTRFS_IOC_QGROUP_LIMIT = _ioc(_IOC_READ, 43, ctypes.sizeof(QgroupLimitArgs))
BTRFS_IOC_FS_INFO = _ioc(_IOC_READ, 31, 1024)
FSID_OFFSET = 16


def _ioctl(path: Path, request: int, args: ctypes.Structure | ctypes.Array[ctypes.c_char]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, request, args)
    finally:
        os.close(fd)


def quota_mode(mount_dir: Path) -> str:
    """``squota``, ``qgroup`` (full accounting) or ``disabled``, as the kernel reports it."""
    info = ctypes.create_string_buffer(1024)
    _ioctl(mount_dir, BTRFS_IOC_FS_INFO, info)
    fsid = uuid.UUID(bytes=info.raw[FSID_OFFSET : FSID_OFFSET + 16])
    qgroups = Path("/sys/fs/btrfs") / str(fsid) / "qgroups"
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
