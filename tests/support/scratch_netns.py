"""A throw-away network namespace in a private scratch directory, for tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shells.runtime.host import _libc, netns


@contextmanager
def scratch_netns(*, loopback: bool, prefix: str = "shells-test-netns-") -> Iterator[Path]:
    """A new netns bound at a file under /var/tmp (``lo`` up when ``loopback``, else sealed); the
    netns, the private mount and the directory are gone afterwards. Without root the test that
    asks for one is skipped (saying so), so ``make unit`` runs as any user."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make a network namespace")
    top = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    netns.ensure_private_mount(str(top))
    path = top / "netns"
    try:
        (netns.create_loopback_netns if loopback else netns.create_sealed_netns)(str(path))
        yield path
    finally:
        netns.remove_netns(str(path))
        netns.release_private_mount(str(top))
        for mount_point in _libc.mounts_below(top):
            _libc.umount2(mount_point, _libc.MNT_DETACH)
        shutil.rmtree(top, ignore_errors=True)
