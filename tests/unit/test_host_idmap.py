"""Real idmapped mounts on a throwaway btrfs image (root needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shells.domain.errors import RuntimeFailure
from shells.runtime.host import _libc, idmap
from shells.runtime.host.btrfs import BtrfsPool

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (user namespaces maps, mounts)")

UID_BASE = 3 << 20


@pytest.fixture(scope="module")
def idmap_pool() -> Iterator[BtrfsPool]:
    top = Path(tempfile.mkdtemp(prefix="shells-test-idmap-", dir="/var/tmp"))
    top.chmod(0o755)  # the shifted uids must be able to reach the mount point
    p = BtrfsPool(top / "pool", top / "pool.img", size_bytes=1 << 30)
    try:
        p.ensure_mounted()
        yield p
    finally:
        for mount_point in _libc.mounts_below(top):
            _libc.umount2(mount_point, _libc.MNT_DETACH)
        p.unmount()
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def tree(idmap_pool: BtrfsPool, request: pytest.FixtureRequest) -> Iterator[tuple[Path, Path]]:
    """An unshifted subvolume (``src``) and an empty mount point (``mnt``), cleaned up afterwards."""
    name = request.node.name.replace("[", "-").replace("]", "")
    src, mnt = idmap_pool.mount_dir / f"{name}-src", idmap_pool.mount_dir / f"{name}-mnt"
    idmap_pool.create_subvolume(src)
    mnt.mkdir()
    try:
        yield src, mnt
    finally:
        for mount_point in _libc.mounts_below(mnt):
            _libc.umount2(mount_point, _libc.MNT_DETACH)
        idmap_pool.delete_subvolume(src)
        mnt.rmdir()


@pytest.fixture
def userns() -> Iterator[int]:
    fd = idmap.userns_fd(UID_BASE)
    yield fd
    os.close(fd)


def _children() -> set[int]:
    """This process's children, zombies included (other tests may have long-lived ones)."""
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        found.update(int(pid) for pid in (task / "children").read_text().split())
    return found


def test_userns_fd_is_a_user_namespace_and_its_helper_is_reaped() -> None:
    before = _children()
    fd = idmap.userns_fd(UID_BASE, 1000)
    try:
        assert str(Path(f"/proc/self/fd/{fd}").readlink()).startswith("user:[")
        assert Path(f"/proc/self/fd/{fd}").readlink() != Path("/proc/self/ns/user").readlink()
        assert _children() - before == set(), "the helper process must be gone, not a zombie"
    finally:
        os.close(fd)


def test_a_bad_id_range_is_refused() -> None:
    with pytest.raises(RuntimeFailure, match="bad id range"):
        idmap.userns_fd(2**32 - 10, 65536)


def test_a_file_owned_by_root_on_disk_shows_as_uid_base_through_the_mount(
    tree: tuple[Path, Path], userns: int
) -> None:
    src, mnt = tree
    (src / "etc").mkdir()
    (src / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    os.chown(src / "etc" / "passwd", 0, 0)
    os.chown(src / "etc", 1000, 1000)

    idmap.idmapped_bind(str(src), str(mnt), userns)

    st = (mnt / "etc" / "passwd").stat()
    assert (st.st_uid, st.st_gid) == (UID_BASE, UID_BASE)
    assert (mnt / "etc").stat().st_uid == UID_BASE + 1000
    assert (src / "etc" / "passwd").stat().st_uid == 0  # the disk is untouched


def test_the_mount_is_nosuid_and_nodev(tree: tuple[Path, Path], userns: int) -> None:
    src, mnt = tree
    idmap.idmapped_bind(str(src), str(mnt), userns)
    flags = os.statvfs(mnt).f_flag
    assert flags & os.ST_NOSUID and flags & os.ST_NODEV
    assert not flags & os.ST_RDONLY


def test_a_file_created_through_the_mount_by_uid_base_lands_as_root_on_disk(
    tree: tuple[Path, Path], userns: int
) -> None:
    src, mnt = tree
    idmap.idmapped_bind(str(src), str(mnt), userns)
    subprocess.run(
        ["sh", "-c", f"echo hi > {mnt}/made-inside && mkdir {mnt}/dir"],
        user=UID_BASE,
        group=UID_BASE,
        extra_groups=[],
        check=True,
    )
    st = (src / "made-inside").stat()
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert (src / "dir").stat().st_uid == 0
    assert (mnt / "made-inside").stat().st_uid == UID_BASE


def test_ids_outside_the_mapped_range_cannot_write_through_the_mount(
    tree: tuple[Path, Path], userns: int
) -> None:
    src, mnt = tree
    idmap.idmapped_bind(str(src), str(mnt), userns)
    outsider = subprocess.run(
        ["sh", "-c", f"echo hi > {mnt}/nope"],
        user=UID_BASE - 1,
        group=UID_BASE - 1,
        extra_groups=[],
        check=False,
    )
    assert outsider.returncode != 0
    assert not (src / "nope").exists()


def test_a_recursive_bind_idmaps_the_mounts_below_the_source_too(
    tree: tuple[Path, Path], userns: int
) -> None:
    src, mnt = tree
    (src / "inner").mkdir()
    _libc.mount("tmpfs", src / "inner", "tmpfs", 0, "size=1m,mode=0755")
    try:
        (src / "inner" / "f").write_text("x")
        idmap.idmapped_bind(str(src), str(mnt), userns, recursive=True)
        assert (mnt / "inner" / "f").stat().st_uid == UID_BASE
        idmap.unmount(str(mnt / "inner"))
        idmap.unmount(str(mnt))
    finally:
        _libc.umount2(src / "inner")


def test_unmount_removes_the_mount_and_ignores_paths_that_are_not_mounted(
    tree: tuple[Path, Path], userns: int
) -> None:
    src, mnt = tree
    idmap.idmapped_bind(str(src), str(mnt), userns)
    assert _libc.is_mount_point(mnt)
    idmap.unmount(str(mnt))
    assert not _libc.is_mount_point(mnt)
    idmap.unmount(str(mnt))
    idmap.unmount(str(mnt / "does-not-exist"), lazy=True)


def test_an_idmapped_mount_takes_milliseconds(tree: tuple[Path, Path]) -> None:
    src, mnt = tree
    ns_times, mount_times = [], []
    for _ in range(10):
        start = time.perf_counter()
        fd = idmap.userns_fd(UID_BASE)
        made = time.perf_counter()
        idmap.idmapped_bind(str(src), str(mnt), fd)
        mount_times.append(time.perf_counter() - made)
        ns_times.append(made - start)
        os.close(fd)
        idmap.unmount(str(mnt))
    print(
        f"\nuserns_fd median {sorted(ns_times)[5] * 1000:.2f} ms, "
        f"idmapped_bind median {sorted(mount_times)[5] * 1000:.3f} ms"
    )
    assert sorted(ns_times)[5] < 0.5


def test_user_namespaces_made_from_many_threads_at_once_never_wait_for_each_other() -> None:
    # Unserialized, two helper children could each hold the other's pipe and wait forever.
    made: list[int] = []

    def make(worker: int) -> None:
        for i in range(25):
            fd = idmap.userns_fd(2**20 + ((worker * 25 + i) % 16) * 65536)
            os.close(fd)
            made.append(fd)

    threads = [threading.Thread(target=make, args=(w,), daemon=True) for w in range(16)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120  # a deadlock never ends; 400 namespaces take 4 s idle, 30 at load 10
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert len(made) == 16 * 25, f"{len(made)} of {16 * 25} made: the helpers deadlocked"


def test_a_helper_that_fails_is_reported_with_what_it_said_and_reaped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = _children()
    monkeypatch.setattr(
        idmap, "HELPER_ARGV", ("sh", "-c", "echo 'unshare: no room for namespaces' >&2; exit 1")
    )
    with pytest.raises(RuntimeFailure, match="no room for namespaces"):
        idmap.userns_fd(UID_BASE, 1000)
    assert _children() - before == set(), "the helper process must be gone, not a zombie"
