"""Real btrfs tests on a throwaway loop-mounted image per module (root needed)."""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

import pytest

from shells.domain.errors import RuntimeFailure
from shells.runtime.host import _libc, btrfs
from shells.runtime.host.btrfs import BtrfsPool

from .conftest import loops_backed_by

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loop mounts, btrfs ioctls)")


def test_struct_layouts_and_ioctl_numbers_match_the_kernel_abi() -> None:
    for struct in (
        btrfs.VolArgs,
        btrfs.VolArgsV2,
        btrfs.GetSubvolRootrefArgs,
        btrfs.InoLookupUserArgs,
    ):
        assert ctypes.sizeof(struct) == 4096, struct.__name__
    assert btrfs.VolArgsV2.name.offset == 56
    assert btrfs.InoLookupUserArgs.path.offset == 272
    # values from linux/btrfs.h as compiled on x86_64
    assert btrfs.BTRFS_IOC_SNAP_CREATE_V2 == 0x50009417
    assert btrfs.BTRFS_IOC_SUBVOL_CREATE_V2 == 0x50009418
    assert btrfs.BTRFS_IOC_SNAP_DESTROY == 0x5000940F
    assert btrfs.BTRFS_IOC_SUBVOL_GETFLAGS == 0x80089419
    assert btrfs.BTRFS_IOC_SUBVOL_SETFLAGS == 0x4008941A
    assert btrfs.BTRFS_IOC_GET_SUBVOL_ROOTREF == 0xD000943D
    assert btrfs.BTRFS_IOC_INO_LOOKUP_USER == 0xD000943E


def test_ensure_mounted_creates_a_sparse_btrfs_image_and_mounts_it(pool: BtrfsPool) -> None:
    assert pool.image is not None
    assert btrfs.is_on_btrfs(pool.mount_dir)
    assert _libc.is_mount_point(pool.mount_dir)
    st = pool.image.stat()
    assert st.st_size == 4 << 30
    assert st.st_blocks * 512 < 256 << 20  # sparse


def test_ensure_mounted_twice_reuses_the_existing_mount(pool: BtrfsPool) -> None:
    before = [m for m in _libc.mount_points() if m[0] == str(pool.mount_dir)]
    pool.ensure_mounted()
    after = [m for m in _libc.mount_points() if m[0] == str(pool.mount_dir)]
    assert before == after and len(after) == 1


def test_ensure_mounted_remounts_an_existing_image_and_keeps_its_data(workdir: Path) -> None:
    p = BtrfsPool(workdir / "again", workdir / "again.img", size_bytes=1 << 30)
    p.ensure_mounted()
    try:
        p.create_subvolume(p.mount_dir / "kept")
        (p.mount_dir / "kept" / "file").write_text("still here")
        p.unmount()
        assert not _libc.is_mount_point(p.mount_dir)
        assert loops_backed_by(p.image) == []  # type: ignore[arg-type]
        p.ensure_mounted()
        assert (p.mount_dir / "kept" / "file").read_text() == "still here"
    finally:
        p.unmount()
        p.unmount()  # idempotent


def test_a_directory_already_on_btrfs_is_used_without_an_image(pool: BtrfsPool) -> None:
    inner = BtrfsPool(pool.mount_dir / "plain-dir-pool")
    inner.ensure_mounted()
    assert not _libc.is_mount_point(inner.mount_dir)
    inner.create_subvolume(inner.mount_dir / "sv")
    assert inner.is_subvolume(inner.mount_dir / "sv")
    inner.unmount()  # a no-op without an image
    inner.delete_subvolume(inner.mount_dir / "sv")


def test_a_directory_not_on_btrfs_without_an_image_is_refused(workdir: Path) -> None:
    with pytest.raises(RuntimeFailure, match="not on btrfs"):
        BtrfsPool(workdir / "ext4-dir").ensure_mounted()


def test_create_subvolume_makes_a_subvolume_and_a_plain_directory_is_not_one(pool: BtrfsPool) -> None:
    sv = pool.mount_dir / "created"
    pool.create_subvolume(sv)
    (pool.mount_dir / "plain").mkdir()
    assert pool.is_subvolume(sv)
    assert not pool.is_subvolume(pool.mount_dir / "plain")
    assert not pool.is_subvolume(pool.mount_dir / "missing")
    with pytest.raises(RuntimeFailure, match="create subvolume"):
        pool.create_subvolume(sv)
    pool.delete_subvolume(sv)
    assert not sv.exists()


def test_snapshot_of_a_subvolume_is_readonly_when_asked(pool: BtrfsPool) -> None:
    src = pool.mount_dir / "ro-src"
    pool.create_subvolume(src)
    (src / "a").write_text("a")
    pool.snapshot(src, pool.mount_dir / "ro-snap", readonly=True)
    assert pool.is_readonly(pool.mount_dir / "ro-snap")
    assert (pool.mount_dir / "ro-snap" / "a").read_text() == "a"
    with pytest.raises(OSError) as info:
        (pool.mount_dir / "ro-snap" / "b").write_text("b")
    assert info.value.errno == errno.EROFS
    pool.delete_subvolume(pool.mount_dir / "ro-snap")
    pool.delete_subvolume(src)


def test_a_writable_snapshot_is_independent_of_its_source(pool: BtrfsPool) -> None:
    src = pool.mount_dir / "w-src"
    pool.create_subvolume(src)
    (src / "a").write_text("one")
    pool.snapshot(src, pool.mount_dir / "w-snap")
    assert not pool.is_readonly(pool.mount_dir / "w-snap")
    (pool.mount_dir / "w-snap" / "a").write_text("two")
    assert (src / "a").read_text() == "one"
    pool.delete_subvolume(pool.mount_dir / "w-snap")
    pool.delete_subvolume(src)


def test_set_readonly_toggles_the_subvolume_flag(pool: BtrfsPool) -> None:
    sv = pool.mount_dir / "toggle"
    pool.create_subvolume(sv)
    pool.set_readonly(sv, True)
    assert pool.is_readonly(sv)
    pool.set_readonly(sv, True)
    pool.set_readonly(sv, False)
    assert not pool.is_readonly(sv)
    (sv / "writable").write_text("yes")
    pool.delete_subvolume(sv)


def test_delete_removes_a_readonly_subvolume_with_nested_subvolumes_and_files(pool: BtrfsPool) -> None:
    top = pool.mount_dir / "nested"
    pool.create_subvolume(top)
    (top / "deep" / "er").mkdir(parents=True)
    pool.create_subvolume(top / "deep" / "er" / "child")
    pool.create_subvolume(top / "deep" / "er" / "child" / "grandchild")
    pool.create_subvolume(top / "sibling")
    (top / "deep" / "er" / "child" / "grandchild" / "f").write_text("x")
    pool.set_readonly(top / "deep" / "er" / "child", True)
    pool.set_readonly(top, True)
    assert sorted(p.relative_to(top) for p in pool.list_subvolumes_below(top)) == [
        Path("deep/er/child"),
        Path("sibling"),
    ]

    pool.delete_subvolume(top)

    assert not top.exists()
    pool.delete_subvolume(top)  # a missing path is fine


def test_delete_refuses_a_plain_directory(pool: BtrfsPool) -> None:
    (pool.mount_dir / "not-a-subvolume").mkdir()
    with pytest.raises(RuntimeFailure, match="not a subvolume"):
        pool.delete_subvolume(pool.mount_dir / "not-a-subvolume")


def test_the_ioctls_that_release_the_gil_still_report_the_kernels_errno(pool: BtrfsPool) -> None:
    src = pool.mount_dir / "errno-src"
    pool.create_subvolume(src)
    pool.snapshot(src, pool.mount_dir / "errno-dst")
    with pytest.raises(RuntimeFailure, match=r"snapshot .* File exists"):
        pool.snapshot(src, pool.mount_dir / "errno-dst")
    with pytest.raises(OSError) as caught:
        _libc.ioctl(-1, btrfs.BTRFS_IOC_SNAP_DESTROY, btrfs.VolArgs())
    assert caught.value.errno == errno.EBADF
    pool.delete_subvolume(pool.mount_dir / "errno-dst")
    pool.delete_subvolume(src)
    assert not src.exists()
