"""Persistent network namespaces bound to files, without spawning a process.

A short-lived thread unshares CLONE_NEWNET (allowed in a threaded process, unlike CLONE_NEWUSER:
it only moves the calling thread), optionally brings ``lo`` up, bind-mounts
``/proc/thread-self/ns/net`` onto the target file and exits. The bind mount keeps the namespace
alive. Because it is created by root in the init user namespace, that namespace owns it: root
inside a shell's own user namespace has no CAP_NET_ADMIN over it, so a sealed shell cannot bring
``lo`` up (and connect() to anything, 127.0.0.1 included, fails with ENETUNREACH).

The files must live in a directory that is a private mount (``ensure_private_mount``): under a
shared mount, binding nsfs fails with EINVAL (or would propagate into other namespaces).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from shells.domain.errors import RuntimeFailure
from shells.runtime.host import _libc

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

_THREAD_TIMEOUT_S = 5.0

T = TypeVar("T")


def ensure_private_mount(directory: str) -> None:
    """Make ``directory`` a private mount point (bind it onto itself first if it is not one). Idempotent."""
    path = os.path.realpath(directory)
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        entry = next((m for m in reversed(_libc.mount_points()) if m[0] == path), None)
        if entry is None:
            _libc.mount(path, path, None, _libc.MS_BIND)
        elif "shared:" not in entry[4] and "master:" not in entry[4]:
            return
        _libc.mount(None, path, None, _libc.MS_PRIVATE)
    except OSError as exc:
        raise RuntimeFailure(f"making {path} a private mount failed: {exc.strerror}") from exc


def release_private_mount(directory: str) -> None:
    """Undo :func:`ensure_private_mount` (for tests and uninstall); the netns files must be gone first."""
    try:
        _libc.umount2(os.path.realpath(directory))
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):
            raise RuntimeFailure(f"unmounting {directory} failed: {exc.strerror}") from exc


def create_sealed_netns(path: str) -> None:
    """A new netns at ``path`` with only ``lo``, left DOWN: no traffic at all, loopback included."""
    _create(path, loopback_up=False)


def create_loopback_netns(path: str) -> None:
    """A new netns at ``path`` with ``lo`` UP: localhost works, nothing else is reachable."""
    _create(path, loopback_up=True)


def _create(path: str, loopback_up: bool) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    except FileExistsError as exc:
        raise RuntimeFailure(f"creating netns {path}: the file already exists") from exc
    except OSError as exc:
        raise RuntimeFailure(f"creating netns {path}: creating the file failed: {exc.strerror}") from exc
    os.close(fd)

    failure: list[BaseException] = []

    def in_new_netns() -> None:
        step = "unshare(CLONE_NEWNET)"
        try:
            _libc.unshare(_libc.CLONE_NEWNET)
            if loopback_up:
                step = "bringing lo up"
                _set_link_up("lo")
            step = "binding the namespace to the file"
            _libc.mount("/proc/thread-self/ns/net", path, None, _libc.MS_BIND)
        except BaseException as exc:
            failure.append(RuntimeFailure(f"creating netns {path}: {step} failed: {exc}"))

    worker = threading.Thread(target=in_new_netns, name="shells-netns", daemon=True)
    worker.start()
    worker.join(_THREAD_TIMEOUT_S)
    if worker.is_alive():
        failure.append(RuntimeFailure(f"creating netns {path}: timed out after {_THREAD_TIMEOUT_S} s"))
    if failure:
        _unlink_quietly(path)
        raise failure[0]


def _set_link_up(name: str) -> None:
    """ifconfig NAME up, as SIOCSIFFLAGS on a socket in the calling thread's netns."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sH22x", name.encode(), 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", name.encode(), flags | IFF_UP))


def run_in_netns(path: str, action: Callable[[], T], timeout_s: float = 30.0) -> T:
    """Run ``action`` in a short-lived thread that has joined the netns bound at ``path`` and return
    its result (or raise its exception). Sockets it creates stay in that netns; ``/proc/sys/net``
    files it opens are that netns's."""
    result: list[T] = []
    failure: list[BaseException] = []

    def joined() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _libc.setns(fd, _libc.CLONE_NEWNET)
            finally:
                os.close(fd)
            result.append(action())
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=joined, name="shells-in-netns", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise RuntimeFailure(f"work inside netns {path} did not finish within {timeout_s} s")
    if failure:
        raise failure[0]
    return result[0]


def remove_netns(path: str) -> None:
    """Unmount and unlink the netns file (idempotent). The netns dies when its last user goes."""
    try:
        _libc.umount2(path, _libc.MNT_DETACH)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):
            raise RuntimeFailure(f"removing netns {path}: umount failed: {exc.strerror}") from exc
    try:
        Path(path).unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise RuntimeFailure(f"removing netns {path}: unlink failed: {exc.strerror}") from exc


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        _libc.umount2(path, _libc.MNT_DETACH)
    Path(path).unlink(missing_ok=True)
