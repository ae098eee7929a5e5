"""The initramfs writer: what it writes is what a real cpio reader unpacks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from shells.runtime.microvm import cpio


@pytest.mark.skipif(shutil.which("busybox") is None, reason="needs busybox (busybox-static) to read cpio")
def test_a_newc_archive_unpacks_to_the_same_tree(tmp_path: Path) -> None:
    archive = cpio.newc(
        [
            cpio.directory("bin"),
            cpio.file("bin/tool", b"#!/bin/sh\necho hi\n", 0o755),
            cpio.file("odd-size", b"x" * 5),  # content that needs padding
            cpio.file("empty", b""),
            cpio.symlink("bin/alias", "tool"),
        ]
    )
    assert len(archive) % 4 == 0
    subprocess.run(["busybox", "cpio", "-i", "-d"], input=archive, cwd=tmp_path, check=True)
    assert (tmp_path / "bin" / "tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (tmp_path / "bin" / "tool").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "odd-size").read_bytes() == b"xxxxx"
    assert (tmp_path / "empty").read_bytes() == b""
    assert (tmp_path / "bin" / "alias").readlink() == Path("tool")


def test_the_archive_ends_with_the_trailer() -> None:
    archive = cpio.newc([cpio.file("a", b"1")])
    assert archive.startswith(b"070701")
    assert b"TRAILER!!!\0" in archive[-128:]
