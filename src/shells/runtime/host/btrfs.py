"""A per-instance btrfs pool: subvolumes, snapshots and deletes through the btrfs ioctls.

The pool is either a sparse image file formatted btrfs and loop-mounted at ``mount_dir``, or a
directory that already lives on btrfs (then no image is used). Subvolume operations go straight to
the kernel with ioctls (no ``btrfs`` process per call; the slow ones through ``_libc.ioctl``, which
releases the GIL); only the one-off mkfs and loop mount use the CLI.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shells.domain.errors import RuntimeFailure
from shells.runtime.host import _libc

BTRFS_SUPER_MAGIC = 0x9123683E
BTRFS_FIRST_FREE_OBJECTID = 256
"""Inode number of the root directory of every subvolume."""

_BTRFS_IOCTL_MAGIC = 0x94
_BTRFS_PATH_NAME_MAX = 4087
_BTRFS_SUBVOL_NAME_MAX = 4039
_BTRFS_VOL_NAME_MAX = 255
_BTRFS_INO_LOOKUP_USER_PATH_MAX = 4080 - _BTRFS_VOL_NAME_MAX - 1
BTRFS_SUBVOL_RDONLY = 1 << 1


class VolArgs(ctypes.Structure):
    """struct btrfs_ioctl_vol_args (4096 bytes)."""

    _fields_ = [("fd", ctypes.c_int64), ("name", ctypes.c_char * (_BTRFS_PATH_NAME_MAX + 1))]


class VolArgsV2(ctypes.Structure):
    """struct btrfs_ioctl_vol_args_v2 (4096 bytes): fd, transid, flags, 32-byte union, name union."""

    _fields_ = [
        ("fd", ctypes.c_int64),
        ("transid", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("unused", ctypes.c_uint64 * 4),
        ("name", ctypes.c_char * (_BTRFS_SUBVOL_NAME_MAX + 1)),
    ]


class RootRef(ctypes.Structure):
    _fields_ = [("treeid", ctypes.c_uint64), ("dirid", ctypes.c_uint64)]


class GetSubvolRootrefArgs(ctypes.Structure):
    """struct btrfs_ioctl_get_subvol_rootref_args (4096 bytes): the subvolumes directly below one."""

    _fields_ = [
        ("min_treeid", ctypes.c_uint64),
        ("rootref", RootRef * 255),
        ("num_items", ctypes.c_uint8),
        ("align", ctypes.c_uint8 * 7),
    ]


class InoLookupUserArgs(ctypes.Structure):
    """struct btrfs_ioctl_ino_lookup_user_args (4096 bytes): where a child subvolume hangs."""

    _fields_ = [
        ("dirid", ctypes.c_uint64),
        ("treeid", ctypes.c_uint64),
        ("name", ctypes.c_char * (_BTRFS_VOL_NAME_MAX + 1)),
        ("path", ctypes.c_char * _BTRFS_INO_LOOKUP_USER_PATH_MAX),
    ]


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (_BTRFS_IOCTL_MAGIC << 8) | nr


_IOC_WRITE, _IOC_READ = 1, 2
BTRFS_IOC_SNAP_DESTROY = _ioc(_IOC_WRITE, 15, ctypes.sizeof(VolArgs))
BTRFS_IOC_SNAP_CREATE_V2 = _ioc(_IOC_WRITE, 23, ctypes.sizeof(VolArgsV2))
BTRFS_IOC_SUBVOL_CREATE_V2 = _ioc(_IOC_WRITE, 24, ctypes.sizeof(VolArgsV2))
BTRFS_IOC_SUBVOL_GETFLAGS = _ioc(_IOC_READ, 25, 8)
BTRFS_IOC_SUBVOL_SETFLAGS = _ioc(_IOC_WRITE, 26, 8)
BTRFS_IOC_GET_SUBVOL_ROOTREF = _ioc(_IOC_READ | _IOC_WRITE, 61, ctypes.sizeof(GetSubvolRootrefArgs))
BTRFS_IOC_INO_LOOKUP_USER = _ioc(_IOC_READ | _IOC_WRITE, 62, ctypes.sizeof(InoLookupUserArgs))


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 112)]


_libc_statfs = ctypes.CDLL(None, use_errno=True).statfs
_libc_statfs.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Statfs)]
_libc_statfs.restype = ctypes.c_int


def is_on_btrfs(path: Path) -> bool:
    buf = _Statfs()
    if _libc_statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        err = ctypes.get_errno()
        if err == errno.ENOENT:
            return False
        raise OSError(err, os.strerror(err), str(path))
    return int(buf.f_type) & 0xFFFFFFFF == BTRFS_SUPER_MAGIC


def _fail(step: str, exc: OSError) -> RuntimeFailure:
    return RuntimeFailure(f"btrfs {step} failed: {exc.strerror or exc}")


@contextmanager
def _open_dir(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def _leaf_name(path: Path) -> bytes:
    name = os.fsencode(path.name)
    if not name or name in (b".", b"..") or len(name) > _BTRFS_VOL_NAME_MAX:
        raise RuntimeFailure(f"{path} does not end in a usable subvolume name")
    return name


def _run(step: str, argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeFailure(f"{step} failed ({' '.join(argv)}): {proc.stderr.strip() or proc.returncode}")


class BtrfsPool:
    """The btrfs filesystem one Shells instance keeps its rootfs templates and shell volumes in.

    ``image`` None means ``mount_dir`` must already be on btrfs (a real btrfs disk or directory).
    """

    def __init__(self, mount_dir: Path, image: Path | None = None, size_bytes: int = 32 << 30) -> None:
        self.mount_dir = Path(mount_dir)
        self.image = None if image is None else Path(image)
        self.size_bytes = size_bytes

    # -- the pool itself -------------------------------------------------------------------------

    def ensure_mounted(self) -> None:
        """Make ``mount_dir`` a usable btrfs directory, doing as little as possible (idempotent).

        Already on btrfs → nothing (our image mounted earlier, or a real btrfs directory). Otherwise
        the image is mounted, and created + formatted first only when it does not exist.
        """
        self.mount_dir.mkdir(parents=True, exist_ok=True)
        if is_on_btrfs(self.mount_dir):
            return
        if self.image is None:
            raise RuntimeFailure(
                f"btrfs pool: {self.mount_dir} is not on btrfs and no image file is configured; "
                "point the pool at a btrfs directory or give it an image path"
            )
        if not self.image.exists():
            _create_image(self.image, self.size_bytes)
        _run(
            "btrfs pool: loop-mounting the image",
            ["mount", "-t", "btrfs", "-o", "loop,noatime", str(self.image), str(self.mount_dir)],
        )

    def unmount(self) -> None:
        """Unmount an image-backed pool (its loop device goes with it). A plain btrfs dir is left alone."""
        if self.image is None:
            return
        try:
            if _libc.is_mount_point(self.mount_dir):
                _libc.umount2(self.mount_dir)
        except OSError as exc:
            raise _fail(f"unmount of {self.mount_dir}", exc) from exc
        _detach_loops_of(self.image)

    def discard(self) -> None:
        """Unmount the pool and delete its image file: what an instance's purge leaves of its storage
        is nothing. A plain btrfs dir is left alone (it is not ours)."""
        if self.image is None:
            return
        self.unmount()
        self.image.unlink(missing_ok=True)
        self.image.with_name(self.image.name + ".partial").unlink(missing_ok=True)

    # -- subvolumes --------------------------------------------------------------------------------

    def create_subvolume(self, path: Path) -> None:
        path = Path(path)
        args = VolArgsV2(name=_leaf_name(path))
        try:
            with _open_dir(path.parent) as parent:
                _libc.ioctl(parent, BTRFS_IOC_SUBVOL_CREATE_V2, args)
        except OSError as exc:
            raise _fail(f"create subvolume {path}", exc) from exc

    def snapshot(self, src: Path, dst: Path, readonly: bool = False) -> None:
        """Snapshot subvolume ``src`` to the new path ``dst`` (O(1) copy-on-write)."""
        src, dst = Path(src), Path(dst)
        name = _leaf_name(dst)
        try:
            with _open_dir(src) as source, _open_dir(dst.parent) as parent:
                args = VolArgsV2(fd=source, flags=BTRFS_SUBVOL_RDONLY if readonly else 0, name=name)
                _libc.ioctl(parent, BTRFS_IOC_SNAP_CREATE_V2, args)
        except OSError as exc:
            raise _fail(f"snapshot {src} -> {dst}", exc) from exc

    def is_subvolume(self, path: Path) -> bool:
        try:
            st = Path(path).stat(follow_symlinks=False)
        except FileNotFoundError:
            return False
        return stat.S_ISDIR(st.st_mode) and st.st_ino == BTRFS_FIRST_FREE_OBJECTID and is_on_btrfs(Path(path))

    def is_readonly(self, path: Path) -> bool:
        try:
            with _open_dir(Path(path)) as fd:
                return bool(_get_flags(fd) & BTRFS_SUBVOL_RDONLY)
        except OSError as exc:
            raise _fail(f"read flags of {path}", exc) from exc

    def set_readonly(self, path: Path, readonly: bool) -> None:
        try:
            with _open_dir(Path(path)) as fd:
                _set_readonly_fd(fd, readonly)
        except OSError as exc:
            raise _fail(f"set read-only={readonly} on {path}", exc) from exc

    def delete_subvolume(self, path: Path) -> None:
        """Delete subvolume ``path`` with everything in it, nested subvolumes first (idempotent).

        Works on read-only subvolumes: a read-only parent is made writable before its children are
        unlinked from it, since that edits its directory. Space is reclaimed by btrfs in the
        background; the path is gone when this returns.
        """
        path = Path(path)
        if not path.exists():
            return
        if not self.is_subvolume(path):
            raise RuntimeFailure(f"btrfs delete: {path} is not a subvolume")
        try:
            self._delete(path)
        except OSError as exc:
            raise _fail(f"delete subvolume {path}", exc) from exc

    def _delete(self, path: Path) -> None:
        with _open_dir(path) as fd:
            children = _child_subvolumes(fd)
            if children and _get_flags(fd) & BTRFS_SUBVOL_RDONLY:
                _set_readonly_fd(fd, False)
        for child in children:
            self._delete(path / child)
        args = VolArgs(name=_leaf_name(path))
        with _open_dir(path.parent) as parent:
            _libc.ioctl(parent, BTRFS_IOC_SNAP_DESTROY, args)

    def list_subvolumes_below(self, path: Path) -> list[Path]:
        """Subvolumes directly below subvolume ``path`` (at any directory depth inside it)."""
        with _open_dir(Path(path)) as fd:
            return [Path(path) / child for child in _child_subvolumes(fd)]


def _create_image(image: Path, size_bytes: int) -> None:
    """Sparse file + mkfs under a temporary name, renamed into place only once formatted."""
    image.parent.mkdir(parents=True, exist_ok=True)
    partial = image.with_name(image.name + ".partial")
    with partial.open("wb") as f:
        f.truncate(size_bytes)  # sparse: costs no disk until written
    try:
        _run("btrfs pool: mkfs.btrfs", ["mkfs.btrfs", "-q", "-f", "--nodiscard", str(partial)])
        partial.rename(image)
    finally:
        partial.unlink(missing_ok=True)


def _get_flags(fd: int) -> int:
    flags = ctypes.c_uint64(0)
    fcntl.ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, flags)
    return flags.value


def _set_readonly_fd(fd: int, readonly: bool) -> None:
    current = _get_flags(fd)
    wanted = current | BTRFS_SUBVOL_RDONLY if readonly else current & ~BTRFS_SUBVOL_RDONLY
    if wanted != current:
        fcntl.ioctl(fd, BTRFS_IOC_SUBVOL_SETFLAGS, ctypes.c_uint64(wanted))


def _child_subvolumes(fd: int) -> list[str]:
    """Relative paths of the subvolumes whose parent is the subvolume ``fd`` is the root of.

    GET_SUBVOL_ROOTREF lists (tree id, containing dir inode); INO_LOOKUP_USER turns each into a path.
    Pages of 255 are signalled with EOVERFLOW and continue from ``min_treeid``.
    """
    found: list[str] = []
    args = GetSubvolRootrefArgs(min_treeid=0)
    while True:
        more = False
        try:
            fcntl.ioctl(fd, BTRFS_IOC_GET_SUBVOL_ROOTREF, args)
        except OSError as exc:
            if exc.errno != errno.EOVERFLOW:
                raise
            more = True
        for i in range(args.num_items):
            ref = args.rootref[i]
            lookup = InoLookupUserArgs(dirid=ref.dirid, treeid=ref.treeid)
            fcntl.ioctl(fd, BTRFS_IOC_INO_LOOKUP_USER, lookup)
            found.append(str(Path(os.fsdecode(lookup.path)) / os.fsdecode(lookup.name)))
        if not more:
            return found
        args.min_treeid = args.rootref[args.num_items - 1].treeid + 1


def _detach_loops_of(image: Path) -> None:
    """Detach loop devices still backed by ``image`` (autoclear normally already did it)."""
    target = os.path.realpath(image)
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            if backing.read_text().strip() != target:
                continue
        except OSError:
            continue
        device = Path("/dev") / backing.parent.parent.name
        try:
            fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.ioctl(fd, 0x4C01)  # LOOP_CLR_FD
        except OSError as exc:
            if exc.errno not in (errno.ENXIO, errno.EBUSY):
                raise _fail(f"detach {device} from {image}", exc) from exc
        finally:
            os.close(fd)
