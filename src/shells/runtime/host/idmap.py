"""Idmapped bind mounts: show an unshifted tree (files owned by 0..65535) shifted to a shell's uid range.

A shell's user namespace maps ``0 → uid_base``. Its rootfs is stored unshifted; an idmapped mount
of it with a user namespace carrying the same map makes a file owned by 0 on disk appear as
``uid_base`` through the mount, and a file created through the mount by ``uid_base`` land as 0 on
disk. util-linux 2.38 has no ``X-mount.idmap``, so this uses the new mount API directly
(open_tree + mount_setattr + move_mount).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import select
import signal
from pathlib import Path

from shells.domain.errors import RuntimeFailure
from shells.runtime.host import _libc

# x86_64 syscall numbers of the new mount API
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x00000001
MOUNT_ATTR_NOSUID = 0x00000002
MOUNT_ATTR_NODEV = 0x00000004
MOUNT_ATTR_IDMAP = 0x00100000

_HELPER_TIMEOUT_S = 5.0


class MountAttr(ctypes.Structure):
    """struct mount_attr (MOUNT_ATTR_SIZE_VER0 = 32 bytes)."""

    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


HELPER_ARGV = ("unshare", "--user", "--", "/bin/sh", "-c", "echo; read _")
"""The helper: in a new user namespace, say so on stdout, then wait until its stdin closes."""


def userns_fd(uid_base: int, count: int = 65536) -> int:
    """An fd for a new user namespace mapping ``0 uid_base count`` for uids and gids.

    A spawned helper (``HELPER_ARGV``) unshares CLONE_NEWUSER, reports and waits; we (root in the
    parent namespace) write its uid_map/gid_map — ``unshare --map-users`` would need newuidmap and
    /etc/subuid — open ``/proc/HELPER/ns/user``, then close its stdin so it exits, and reap it. The
    namespace lives as long as the returned fd (close it when the mounts that use it are made; they
    keep their own reference).

    The helper is spawned (posix_spawn: vfork and exec), not forked: a fork of the server copies its
    page tables and makes every page it writes afterwards fault (17-32 ms median from a process with
    200 MB of heap on the loaded 2-core host, against ~2 ms spawned), and a forked child that runs
    on without exec inherits the pipes other threads make meanwhile, which is why forks had to be
    serialized (two children once held each other's pipe and waited forever). An exec closes every
    close-on-exec fd, so spawns from many threads at once need no lock.
    """
    if uid_base < 0 or count <= 0 or uid_base + count > 2**32 - 1:
        raise RuntimeFailure(f"creating a user namespace: bad id range {uid_base}+{count}")
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    in_r, in_w = os.pipe2(os.O_CLOEXEC)
    # Copies at 10 or above, so each dup2 onto 0/1/2 really happens (and clears close-on-exec).
    child_in = fcntl.fcntl(in_r, fcntl.F_DUPFD_CLOEXEC, 10)
    child_out = fcntl.fcntl(out_w, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(in_r)
    os.close(out_w)
    try:
        pid = os.posix_spawnp(
            HELPER_ARGV[0],
            list(HELPER_ARGV),
            {},
            file_actions=[
                (os.POSIX_SPAWN_DUP2, child_in, 0),
                (os.POSIX_SPAWN_DUP2, child_out, 1),
                (os.POSIX_SPAWN_DUP2, child_out, 2),
            ],
            setsigdef=(signal.SIGPIPE,),
        )
    except OSError as exc:
        os.close(out_r)
        os.close(in_w)
        raise RuntimeFailure(f"creating a user namespace: starting {HELPER_ARGV[0]}: {exc}") from exc
    finally:
        os.close(child_in)
        os.close(child_out)
    try:
        return _map_and_open(pid, out_r, uid_base, count)
    finally:
        os.close(out_r)
        os.close(in_w)  # releases the helper
        _reap(pid)


def _map_and_open(pid: int, out_r: int, uid_base: int, count: int) -> int:
    readable, _, _ = select.select([out_r], [], [], _HELPER_TIMEOUT_S)
    report = os.read(out_r, 512) if readable else b""
    if report != b"\n":
        said = report.decode(errors="replace").strip() or "nothing"
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        raise RuntimeFailure(f"creating a user namespace: the helper did not report ready (it said: {said})")
    line = f"0 {uid_base} {count}\n"
    try:
        Path(f"/proc/{pid}/uid_map").write_text(line)
        Path(f"/proc/{pid}/gid_map").write_text(line)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise RuntimeFailure(
            f"creating a user namespace: writing the id map {line.strip()!r}: {exc}"
        ) from exc


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _sys(what: str, rc: int) -> int:
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return rc


def idmapped_bind(
    source: str, target: str, userns_fd: int | None, recursive: bool = False, read_only: bool = False
) -> None:
    """Bind-mount ``source`` at ``target`` (an existing directory) with ``userns_fd``'s id map, and
    ``nosuid,nodev`` (and ``ro`` if asked): these are shells' own filesystems, and crun cannot remount
    an idmapped mount to add flags (a bind of this one keeps them, locked inside the shell's user
    namespace, so root inside cannot make a read-only one writable). ``userns_fd`` None: no id map
    (``locked_bind``)."""
    src, dst = os.fsencode(source), os.fsencode(target)
    rec = AT_RECURSIVE if recursive else 0
    step = "open_tree"
    try:
        tree = _sys(
            f"open_tree {source}",
            _libc.syscall(SYS_OPEN_TREE, AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec),
        )
        try:
            step = "mount_setattr(MOUNT_ATTR_IDMAP)"
            flags = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (MOUNT_ATTR_IDMAP if userns_fd is not None else 0)
            if read_only:
                flags |= MOUNT_ATTR_RDONLY
            attr = MountAttr(attr_set=flags, userns_fd=userns_fd or 0)
            _sys(
                f"mount_setattr {source}",
                _libc.syscall(
                    SYS_MOUNT_SETATTR, tree, b"", AT_EMPTY_PATH | rec, ctypes.byref(attr), ctypes.sizeof(attr)
                ),
            )
            step = "move_mount"
            _sys(
                f"move_mount {target}",
                _libc.syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH),
            )
        finally:
            os.close(tree)
    except OSError as exc:
        raise RuntimeFailure(f"idmapped mount {source} -> {target}: {step} failed: {exc.strerror}") from exc


def locked_bind(source: str, target: str, read_only: bool) -> None:
    """Bind ``source`` at ``target`` ``nosuid,nodev`` (and ``ro``), ids as they are: what a process
    on the host serves to a guest (``microvm/shares.py``) can then never be a device, a set-id
    program or, read-only, written, whatever that process is asked to do."""
    idmapped_bind(source, target, None, read_only=read_only)


def unmount(target: str, lazy: bool = False) -> None:
    """umount2 ``target``; a path that is not (or no longer) a mount point is fine."""
    try:
        _libc.umount2(target, _libc.MNT_DETACH if lazy else 0)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOENT):
            return
        raise RuntimeFailure(f"unmounting {target} failed: {exc.strerror}") from exc
