"""The instance's small tmpfs mounts that shells see a part of (needs root to mount and mknod)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from shells.runtime.container import host_view
from shells.runtime.host import _libc, idmap

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs and mknod")


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "view"
    yield path
    idmap.unmount(str(path), lazy=True)


def test_the_device_tmpfs_has_crun_s_devices_a_fixed_size_and_allows_device_nodes(target: Path) -> None:
    host_view.mount_devices(target)
    host_view.mount_devices(target)  # idempotent: one mount, the same nodes
    assert sum(1 for m in _libc.mount_points() if m[0] == str(target)) == 1
    for name, (major, minor) in host_view.DEVICES.items():
        st = (target / name).stat()
        assert stat.S_ISCHR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o666, name
        assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (major, minor), name
    with (target / "null").open("wb") as null:
        null.write(b"gone")
    flags = os.statvfs(target).f_flag
    assert flags & os.ST_NOSUID and flags & os.ST_NOEXEC and not flags & os.ST_NODEV


def test_the_shared_tmpfs_is_small_and_allows_nothing_but_reading_files(target: Path) -> None:
    host_view.mount_shared(target)
    host_view.mount_shared(target)
    assert (target / "resolv").is_dir()
    flags = os.statvfs(target).f_flag
    assert flags & os.ST_NOSUID and flags & os.ST_NODEV and flags & os.ST_NOEXEC
    statvfs = os.statvfs(target)
    assert statvfs.f_blocks * statvfs.f_frsize == 64 * 1024 * 1024


def test_the_runtime_tmpfs_is_read_only_but_while_a_version_is_added(target: Path, tmp_path: Path) -> None:
    host_view.mount_runtime(target)
    old, new = tmp_path / "old", tmp_path / "new"
    for version in (old, new):
        (version / "bin").mkdir(parents=True)
        (version / "bin" / "python3").write_text(version.name)
    flags = os.statvfs(target).f_flag
    assert flags & os.ST_RDONLY and flags & os.ST_NOSUID and flags & os.ST_NODEV
    assert not flags & os.ST_NOEXEC  # the agent's interpreter runs from it
    assert host_view.install_runtime(target, old, lambda name: False) == target / "old"
    in_use = {"old"}
    assert host_view.install_runtime(target, new, in_use.__contains__) == target / "new"
    assert sorted(p.name for p in target.iterdir()) == ["new", "old"]  # a running shell binds old
    assert (target / "old" / "bin" / "python3").read_text() == "old"
    in_use.clear()
    host_view.install_runtime(target, new, in_use.__contains__)
    assert [p.name for p in target.iterdir()] == ["new"]
    assert os.statvfs(target).f_flag & os.ST_RDONLY
    with pytest.raises(OSError):
        (target / "new" / "x").write_text("x")
