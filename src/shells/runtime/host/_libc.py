"""Thin ctypes bindings to the libc calls the host primitives share (mount, umount2, unshare, setns).

Everything here returns normally or raises ``OSError`` with the real errno; callers turn that into a
``RuntimeFailure`` that names their step. Keeping the raw calls in one place means the constants and
signatures are written (and checked) once.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)

_mount = _libc.mount
_mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_mount.restype = ctypes.c_int

_umount2 = _libc.umount2
_umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_umount2.restype = ctypes.c_int

_unshare = _libc.unshare
_unshare.argtypes = [ctypes.c_int]
_unshare.restype = ctypes.c_int

_setns = _libc.setns
_setns.argtypes = [ctypes.c_int, ctypes.c_int]
_setns.restype = ctypes.c_int

_ioctl = _libc.ioctl
_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_ioctl.restype = ctypes.c_int

syscall = _libc.syscall
syscall.restype = ctypes.c_long

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

# umount2(2) flags
MNT_DETACH = 0x2

# namespace flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080


def _fs(path: str | os.PathLike[str] | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(
    source: str | os.PathLike[str] | None,
    target: str | os.PathLike[str],
    fstype: str | None,
    flags: int,
    data: str | None = None,
) -> None:
    """mount(2). ``data`` is the comma-separated option string, as for the CLI's ``-o``."""
    rc = _mount(
        _fs(source),
        _fs(target),
        None if fstype is None else fstype.encode(),
        flags,
        None if data is None else ctypes.c_char_p(data.encode()),
    )
    _check(rc, f"mount {target}")


def ioctl(fd: int, request: int, arg: ctypes.Structure) -> None:
    """ioctl(2) on a ctypes structure, with the GIL released: ``fcntl.ioctl`` holds it through the
    call, and a btrfs snapshot or subvolume delete commits a transaction (milliseconds in which no
    other thread of the server, the event loop included, could run)."""
    _check(_ioctl(fd, request, ctypes.byref(arg)), "ioctl")


def umount2(target: str | os.PathLike[str], flags: int = 0) -> None:
    _check(_umount2(_fs(target), flags), f"umount {target}")


def unshare(flags: int) -> None:
    _check(_unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_setns(fd, nstype), "setns")


def mount_points() -> list[tuple[str, str, str, str, str]]:
    """Mounts of this mount namespace: (mount point, fstype, source, super options, optional fields).

    Parsed from /proc/self/mountinfo; octal escapes (``\\040`` for a space) are decoded.
    """
    found: list[tuple[str, str, str, str, str]] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split(" ")
        rest = right.split(" ")
        if len(fields) < 6 or len(rest) < 3:
            continue
        optional = " ".join(fields[6:])
        found.append((_unescape(fields[4]), rest[0], _unescape(rest[1]), rest[2], optional))
    return found


def _unescape(field: str) -> str:
    if "\\" not in field:
        return field
    raw = field.encode()
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == 0x5C and i + 4 <= len(raw) and raw[i + 1 : i + 4].isdigit():
            out.append(int(raw[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return os.fsdecode(bytes(out))


def is_mount_point(path: str | os.PathLike[str]) -> bool:
    target = os.path.realpath(path)
    return any(mp == target for mp, *_ in mount_points())


def mounts_below(path: str | os.PathLike[str]) -> list[str]:
    """Mount points at or below ``path``, deepest first (the order to unmount them in)."""
    top = os.path.realpath(path)
    prefix = top.rstrip("/") + "/"
    hits = [mp for mp, *_ in mount_points() if mp == top or mp.startswith(prefix)]
    return sorted(set(hits), key=lambda p: p.count("/"), reverse=True)


# openat2(2): resolve a path with the directory fd as "/" (symlinks included), never above it
SYS_OPENAT2 = 437  # the same number on x86_64 and aarch64
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dir_fd: int, path: str, flags: int, resolve: int) -> int:
    """``openat2(dir_fd, path, {flags, 0, resolve})``: an fd, or OSError with the real errno."""
    how = _OpenHow(flags, 0, resolve)
    args = (ctypes.c_long(SYS_OPENAT2), ctypes.c_long(dir_fd), ctypes.c_char_p(os.fsencode(path)))
    fd = int(syscall(*args, ctypes.byref(how), ctypes.c_long(ctypes.sizeof(how))))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"openat2 {path}: {os.strerror(err)}")
    return fd
