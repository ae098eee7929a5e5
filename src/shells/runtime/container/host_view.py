"""The two small tmpfs mounts of an instance that every container shell sees a part of.

A shell's /proc/self/mountinfo names the filesystem, source, root path and options of every mount it
has, so nothing bound into a shell may come from the host's root filesystem (its device and paths
would show) or from a tmpfs of default size (half the host's RAM would show). Hence:

- ``shared``: the agent code and each shell's resolv.conf, bound read-only into shells;
- ``devices``: the device nodes crun binds into every shell (``/dev/null``, ``/dev/zero``, ...). In a
  user namespace crun cannot mknod, so it binds them from ``/dev`` as it sees it; crun therefore runs
  in a throwaway mount namespace whose ``/dev`` is this tmpfs (see ``crun.py``), not the host's
  devtmpfs. Unlike ``shared`` it must allow device nodes.

Both are made once per instance by the host and kept across server restarts (shells bind them).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ...domain.errors import RuntimeFailure
from ..host import _libc

SHARED_OPTIONS = "size=64m,nr_inodes=65536,mode=0755"
DEVICES_OPTIONS = "size=4k,nr_inodes=16,mode=0755"
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "tty": (5, 0), "random": (1, 8), "urandom": (1, 9)}
"""The devices crun gives every container (its ``needed_devs``), by name under /dev: (major, minor)."""


def _tmpfs(target: Path, flags: int, options: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    if _libc.is_mount_point(target):
        return
    try:
        _libc.mount("shells", target, "tmpfs", _libc.MS_NOSUID | flags, options)
    except OSError as exc:
        raise RuntimeFailure(f"mounting a tmpfs at {target} failed: {exc.strerror}") from exc


def mount_shared(target: Path) -> None:
    """The tmpfs for the agent code and resolv.conf files (``resolv/`` made). Idempotent."""
    _tmpfs(target, _libc.MS_NODEV | _libc.MS_NOEXEC, SHARED_OPTIONS)
    (target / "resolv").mkdir(mode=0o755, exist_ok=True)


def mount_devices(target: Path) -> None:
    """The tmpfs holding crun's device nodes, made with mknod by the host. Idempotent."""
    _tmpfs(target, _libc.MS_NOEXEC, DEVICES_OPTIONS)
    for name, (major, minor) in DEVICES.items():
        node = target / name
        if not node.exists():
            os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            node.chmod(0o666)  # mknod applies the umask
