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
import os
import select
import threading
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


_FORK_LOCK = threading.Lock()


def userns_fd(uid_base: int, count: int = 65536) -> int:
    """An fd for a new user namespace mapping ``0 uid_base count`` for uids and gids.

    A forked child unshares CLONE_NEWUSER and waits; we (root in the parent namespace) write its
    uid_map/gid_map — ``unshare --map-users`` would need newuidmap and /etc/subuid — open
    ``/proc/CHILD/ns/user``, then let the child exit and reap it. The namespace lives as long as the
    returned fd (close it when the mounts that use it are made; they keep their own reference).
    The child runs no Python beyond raw syscalls, so forking from a threaded daemon is safe.
    Calls are serialized (``_FORK_LOCK``): a child forked by one thread inherits the pipes another
    thread made meanwhile (close-on-exec does not apply, nothing is exec'd), so two concurrent
    children each held the other's ``done`` pipe open and waited for each other forever (a burst
    of creates hung the server's worker threads).
    """
    if uid_base < 0 or count <= 0 or uid_base + count > 2**32 - 1:
        raise RuntimeFailure(f"creating a user namespace: bad id range {uid_base}+{count}")
    with _FORK_LOCK:
        return _userns_fd(uid_base, count)


def _userns_fd(uid_base: int, count: int) -> int:
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    done_r, done_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # child: unshare, report, wait for the parent to close done_w, exit
        code = 0
        try:
            os.close(ready_r)
            os.close(done_w)
            err = _libc.unshare_raw(_libc.CLONE_NEWUSER)
            os.write(ready_w, err.to_bytes(2, "little"))
            if err == 0:
                os.read(done_r, 1)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    try:
        return _map_and_open(pid, ready_r, uid_base, count)
    finally:
        os.close(ready_r)
        os.close(done_w)  # releases the child
        _reap(pid)


def _map_and_open(pid: int, ready_r: int, uid_base: int, count: int) -> int:
    readable, _, _ = select.select([ready_r], [], [], _HELPER_TIMEOUT_S)
    report = os.read(ready_r, 2) if readable else b""
    if len(report) != 2:
        raise RuntimeFailure("creating a user namespace: the helper process did not report back")
    err = int.from_bytes(report, "little")
    if err:
        raise RuntimeFailure(f"creating a user namespace: unshare(CLONE_NEWUSER) failed: {os.strerror(err)}")
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
