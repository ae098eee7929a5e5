"""The initramfs of microvms with shares (docs/storage.md) differs from the usual one only by the
virtio-fs modules and the lines of init that load them: every other VM, and so every pre-booted
template image keyed by its initramfs, is unchanged by shares."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shells.runtime.microvm import artifacts


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox is not installed")
def test_only_the_share_initramfs_loads_virtiofs(tmp_path: Path) -> None:
    modules, shares = tmp_path / "modules", tmp_path / "share-modules"
    modules.mkdir()
    shares.mkdir()
    (modules / "virtio.ko").write_bytes(b"virtio module")
    for name in ("fuse.ko", "virtiofs.ko"):
        (shares / name).write_bytes(name.encode())
    usual = artifacts._initramfs(modules)
    shared = artifacts._initramfs(modules, shares)
    setup = artifacts.SHARES_SETUP.encode()
    assert setup not in usual and b"virtiofs.ko" not in usual
    assert (artifacts.SHARES_ANCHOR.encode() + setup) in shared
    assert b"modules/virtiofs.ko" in shared and b"modules/fuse.ko" in shared
    assert artifacts._initramfs(modules) == usual  # deterministic: the same bytes, the same cache key
