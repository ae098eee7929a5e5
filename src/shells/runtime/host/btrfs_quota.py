"""btrfs quota groups: a size limit on one subvolume, through the ioctls (no ``btrfs`` process).

WASI has no notion of disk quota, so the wasm class limits each shell's /workspace subvolume with a
qgroup limit on the bytes it references: a write past it fails with EDQUOT inside the guest.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
from pathlib import Path

from .btrfs import _IOC_READ, _IOC_WRITE, _ioc

BTRFS_QUOTA_CTL_ENABLE = 1
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


def _ioctl(path: Path, request: int, args: ctypes.Structure) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, request, args)
    finally:
        os.close(fd)


def enable_quota(mount_dir: Path) -> None:
    """Turn quota accounting on for the filesystem (idempotent; the first time starts a rescan)."""
    _ioctl(mount_dir, BTRFS_IOC_QUOTA_CTL, QuotaCtlArgs(cmd=BTRFS_QUOTA_CTL_ENABLE))


def limit_subvolume(subvolume: Path, max_bytes: int) -> None:
    """Limit the bytes ``subvolume`` references (shared extents of a snapshot count too)."""
    args = QgroupLimitArgs(qgroupid=0, flags=BTRFS_QGROUP_LIMIT_MAX_RFER, max_rfer=max_bytes)
    _ioctl(subvolume, BTRFS_IOC_QGROUP_LIMIT, args)
