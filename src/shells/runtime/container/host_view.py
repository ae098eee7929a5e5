"""The three small tmpfs mounts of an instance that every container shell sees a part of.

A shell's /proc/self/mountinfo names the filesystem, source, root path and options of every mount it
has, so nothing bound into a shell may come from the host's root filesystem (its device and paths
would show) or from a tmpfs of default size (half the host's RAM would show). Hence:

- ``shared``: each shell's resolv.conf, bound read-only into shells;
- ``runtime``: the guest agent's runtime (``runtime/agent_runtime.py``: an interpreter, its libraries,
  a precompiled stdlib and the agent), one directory per version, bound read-only at ``/.shells``.
  Executables run from it, so it is the one that allows exec; it is read-only except while the host
  adds a version (every file is owned by the host's root, which no shell's user namespace maps);
- ``devices``: the device nodes crun binds into every shell (``/dev/null``, ``/dev/zero``, ...). In a
  user namespace crun cannot mknod, so it binds them from ``/dev`` as it sees it; crun therefore runs
  in a throwaway mount namespace whose ``/dev`` is this tmpfs (see ``crun.py``), not the host's
  devtmpfs. Unlike ``shared`` it must allow device nodes.

Both are made once per instance by the host and kept across server restarts (shells bind them).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from ...domain.errors import RuntimeFailure
from ..host import _libc

SHARED_OPTIONS = "size=64m,nr_inodes=65536,mode=0755"
RUNTIME_OPTIONS = "size=256m,nr_inodes=16384,mode=0755"
"""Room for a few versions of the agent runtime (~32 MB each), e.g. across upgrades with shells up."""
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
    """The tmpfs for resolv.conf files (``resolv/`` made). Idempotent."""
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


def mount_runtime(target: Path) -> None:
    """The read-only tmpfs for the agent runtime's versions. Idempotent."""
    _tmpfs(target, _libc.MS_NODEV | _libc.MS_RDONLY, RUNTIME_OPTIONS)


def install_runtime(target: Path, source: Path, in_use: Callable[[str], bool]) -> Path:
    """``target/<name of source>``, copied from ``source`` unless already there; versions no running
    shell uses (``in_use(name)`` false) are removed meanwhile. The tmpfs is writable only during this."""
    installed = target / source.name
    stale = [p for p in target.iterdir() if p != installed and not in_use(p.name)]
    if installed.is_dir() and not stale:
        return installed
    _remount(target, 0)
    try:
        for path in stale:
            shutil.rmtree(path)
        if not installed.is_dir():
            staging = target / f".{source.name}"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(source, staging, symlinks=True)
            staging.rename(installed)
    finally:
        _remount(target, _libc.MS_RDONLY)
    return installed


def _remount(target: Path, flags: int) -> None:
    try:
        _libc.mount(None, target, None, _libc.MS_REMOUNT | _libc.MS_NOSUID | _libc.MS_NODEV | flags)
    except OSError as exc:
        raise RuntimeFailure(f"remounting the tmpfs at {target} failed: {exc.strerror}") from exc
