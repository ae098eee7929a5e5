"""Real cgroup v1 tests (root, hybrid host). Every cgroup lives under a random top-level prefix."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shells.domain.errors import RuntimeFailure
from shells.runtime.host import _libc, cgroups

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not (cgroups.CGROUP_ROOT / "memory").is_dir(),
    reason="needs root on a cgroup v1 (hybrid) host",
)


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"shells-test-{secrets.token_hex(4)}"
    yield name
    for child in cgroups.instance_cgroup_children(name):
        cgroups.remove_cgroup(f"/{name}/{child}")
    for hierarchy in cgroups.v1_hierarchies():
        if (hierarchy / name).is_dir():
            (hierarchy / name).rmdir()


def _make(path: str, controllers: tuple[str, ...] | None = None) -> list[Path]:
    """mkdir the cgroup in the given hierarchies (default: all but cpuset, which needs cpus/mems first)."""
    made = []
    for hierarchy in cgroups.v1_hierarchies():
        if (controllers is None and hierarchy.name != "cpuset") or (
            controllers and hierarchy.name in controllers
        ):
            directory = hierarchy / path.strip("/")
            directory.mkdir(parents=True, exist_ok=True)
            made.append(directory)
    return made


def _spawn_in(dirs: list[Path], script: str) -> subprocess.Popen[bytes]:
    """Start ``sh -c script`` parked on ``read``, move it into ``dirs``, then let it run."""
    proc = subprocess.Popen(["sh", "-c", f"read go; {script}"], stdin=subprocess.PIPE)
    for directory in dirs:
        (directory / "cgroup.procs").write_text(str(proc.pid))
    assert proc.stdin is not None
    proc.stdin.write(b"go\n")
    proc.stdin.flush()
    return proc


def test_hybrid_fix_mounts_each_controller_left_in_cgroup2_once(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    (root / "unified").mkdir(parents=True)
    (root / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    try:
        assert cgroups.ensure_hybrid_cgroup_fix(root) is True
        assert (root / "hugetlb" / "hugetlb.2MB.limit_in_bytes").exists()
        assert cgroups.ensure_hybrid_cgroup_fix(root) is False
    finally:
        for mount_point in _libc.mounts_below(root):
            _libc.umount2(mount_point)


def test_hybrid_fix_leaves_pure_v1_and_pure_v2_hosts_alone(tmp_path: Path) -> None:
    pure_v2 = tmp_path / "v2"
    pure_v2.mkdir()
    (pure_v2 / "cgroup.controllers").write_text("cpu memory hugetlb\n")
    pure_v1 = tmp_path / "v1"
    (pure_v1 / "memory").mkdir(parents=True)
    assert cgroups.ensure_hybrid_cgroup_fix(pure_v2) is False
    assert cgroups.ensure_hybrid_cgroup_fix(pure_v1) is False
    assert _libc.mounts_below(tmp_path) == []


def test_after_the_fix_this_host_has_no_controller_left_in_cgroup2() -> None:
    unified = cgroups.CGROUP_ROOT / "unified" / "cgroup.controllers"
    if not unified.exists():
        pytest.skip("not a hybrid host")
    cgroups.ensure_hybrid_cgroup_fix()
    assert unified.read_text().split() == []
    assert cgroups.ensure_hybrid_cgroup_fix() is False


def test_children_of_a_prefix_are_listed_across_hierarchies(prefix: str) -> None:
    _make(f"/{prefix}/a", ("memory",))
    _make(f"/{prefix}/b", ("pids",))
    _make(f"/{prefix}/c")
    assert cgroups.instance_cgroup_children(prefix) == {"a", "b", "c"}
    assert cgroups.instance_cgroup_children(f"{prefix}-missing") == set()


def test_remove_cgroup_kills_every_process_and_removes_it_from_every_hierarchy(prefix: str) -> None:
    dirs = _make(f"/{prefix}/shell1")
    proc = _spawn_in(dirs, "sleep 300 & sleep 300 & (sleep 300 &) ; wait")
    freezer = cgroups.CGROUP_ROOT / "freezer" / prefix / "shell1"
    assert freezer.is_dir()

    cgroups.remove_cgroup(f"/{prefix}/shell1")

    assert proc.wait(timeout=5) == -9
    assert not any(d.exists() for d in dirs)
    assert cgroups.instance_cgroup_children(prefix) == set()
    cgroups.remove_cgroup(f"/{prefix}/shell1")  # idempotent


def test_remove_cgroup_kills_a_paused_cgroup_with_nested_children(prefix: str) -> None:
    _make(f"/{prefix}/paused")
    inner = _make(f"/{prefix}/paused/inner")
    proc = _spawn_in(inner, "sleep 300 & wait")
    (cgroups.CGROUP_ROOT / "freezer" / prefix / "paused" / "freezer.state").write_text("FROZEN")  # crun pause

    cgroups.remove_cgroup(f"/{prefix}/paused")

    assert proc.wait(timeout=5) == -9
    assert cgroups.instance_cgroup_children(prefix) == set()


def test_thaw_lets_a_frozen_cgroup_run_again_and_leaves_others_alone(prefix: str) -> None:
    frozen_dirs = _make(f"/{prefix}/frozen")
    _make(f"/{prefix}/running")
    proc = _spawn_in(frozen_dirs, "read line; echo got")
    state = cgroups.CGROUP_ROOT / "freezer" / prefix / "frozen" / "freezer.state"
    state.write_text("FROZEN")  # what crun pause does mid-snapshot
    assert proc.stdin is not None
    proc.stdin.write(b"x\n")
    proc.stdin.flush()
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.3)

    assert cgroups.thaw_cgroup(f"/{prefix}/frozen") is True
    assert proc.wait(timeout=5) == 0
    assert state.read_text().strip() == "THAWED"
    assert cgroups.thaw_cgroup(f"/{prefix}/running") is False
    assert cgroups.thaw_cgroup(f"/{prefix}/missing") is False


def test_remove_cgroup_also_works_without_a_freezer_cgroup(prefix: str) -> None:
    dirs = _make(f"/{prefix}/nofreezer", ("pids", "memory"))
    proc = _spawn_in(dirs, "sleep 300 & sleep 300 & wait")
    cgroups.remove_cgroup(f"/{prefix}/nofreezer")
    assert proc.wait(timeout=5) == -9
    assert not any(d.exists() for d in dirs)


def test_remove_cgroup_refuses_the_root_cgroup() -> None:
    with pytest.raises(RuntimeFailure):
        cgroups.remove_cgroup("/")


def test_memory_readers_report_peak_usage_and_oom_kills(prefix: str) -> None:
    (memory,) = _make(f"/{prefix}/hog", ("memory",))
    (memory / "memory.limit_in_bytes").write_text(str(32 << 20))
    proc = _spawn_in([memory], "head -c 200M /dev/zero | tail > /dev/null")
    proc.wait(timeout=30)

    assert (cgroups.cgroup_oom_kills(f"/{prefix}/hog") or 0) >= 1  # tail, and sometimes its shell too
    peak = cgroups.cgroup_memory_peak(f"/{prefix}/hog")
    assert peak is not None and 16 << 20 < peak <= 32 << 20


def test_memory_readers_return_none_for_a_missing_cgroup(prefix: str) -> None:
    assert cgroups.cgroup_memory_peak(f"/{prefix}/nothing") is None
    assert cgroups.cgroup_oom_kills(f"/{prefix}/nothing") is None
