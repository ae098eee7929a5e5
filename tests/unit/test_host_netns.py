"""Real persistent network namespaces in a private temporary directory (root needed)."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from shells.domain.errors import RuntimeFailure
from shells.runtime.host import _libc, netns

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (netns, mounts)")

T = TypeVar("T")


@pytest.fixture
def nsdir() -> Iterator[Path]:
    top = Path(tempfile.mkdtemp(prefix="shells-test-netns-", dir="/var/tmp"))
    netns.ensure_private_mount(str(top))
    try:
        yield top
    finally:
        for entry in top.iterdir():
            netns.remove_netns(str(entry))
        netns.release_private_mount(str(top))
        for mount_point in _libc.mounts_below(top):
            _libc.umount2(mount_point, _libc.MNT_DETACH)
        shutil.rmtree(top, ignore_errors=True)


def _inside(path: Path, action: Callable[[], T]) -> T:
    return netns.run_in_netns(str(path), action, timeout_s=10)


def _connect_errno(port: int) -> int:
    with socket.socket() as sock:
        sock.settimeout(5)
        return sock.connect_ex(("127.0.0.1", port))


def _lo_flags() -> int:
    """lo's flags in the calling thread's netns (/sys/class/net shows the netns sysfs was mounted in)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = fcntl.ioctl(sock.fileno(), netns.SIOCGIFFLAGS, struct.pack("16sH22x", b"lo", 0))
    flags: int = struct.unpack("16sH22x", ifreq)[1]
    return flags


def _links() -> list[str]:
    return sorted(name for _, name in socket.if_nameindex())


def _echo_over_loopback() -> bytes:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=5) as client:
            conn, _ = server.accept()
            with conn:
                client.sendall(b"ping")
                return conn.recv(4)


def test_ensure_private_mount_makes_the_directory_a_private_mount_once(nsdir: Path) -> None:
    netns.ensure_private_mount(str(nsdir))
    entries = [m for m in _libc.mount_points() if m[0] == str(nsdir)]
    assert len(entries) == 1
    assert "shared:" not in entries[0][4] and "master:" not in entries[0][4]


def test_a_sealed_netns_refuses_even_loopback_with_enetunreach(nsdir: Path) -> None:
    path = nsdir / "sealed"
    netns.create_sealed_netns(str(path))
    assert path.stat().st_ino != Path("/proc/self/ns/net").stat().st_ino
    assert _inside(path, lambda: _connect_errno(80)) == errno.ENETUNREACH
    assert _inside(path, _lo_flags) & 1 == 0  # lo is down
    assert _lo_flags() & 1 == 1  # ours is untouched
    assert _inside(path, _links) == ["lo"]


def test_root_in_a_user_namespace_cannot_bring_lo_up_in_a_sealed_netns(nsdir: Path) -> None:
    path = nsdir / "sealed"
    netns.create_sealed_netns(str(path))
    attempt = subprocess.run(
        ["nsenter", f"--net={path}", "unshare", "--user", "--map-root-user", "ip", "link", "set", "lo", "up"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert attempt.returncode != 0
    assert "Operation not permitted" in attempt.stderr
    assert _inside(path, lambda: _connect_errno(80)) == errno.ENETUNREACH


def test_a_loopback_netns_serves_localhost_and_nothing_else(nsdir: Path) -> None:
    path = nsdir / "localhost"
    netns.create_loopback_netns(str(path))
    assert _inside(path, _lo_flags) & 1 == 1
    assert _inside(path, _echo_over_loopback) == b"ping"
    assert _inside(path, _links) == ["lo"]
    with pytest.raises(OSError) as info:
        _inside(path, lambda: socket.create_connection(("198.51.100.1", 80), timeout=5))
    assert info.value.errno == errno.ENETUNREACH


def test_creating_a_netns_over_an_existing_file_fails_and_keeps_the_file(nsdir: Path) -> None:
    path = nsdir / "taken"
    path.write_text("")
    with pytest.raises(RuntimeFailure, match="already exists"):
        netns.create_sealed_netns(str(path))
    assert path.exists()


def test_remove_netns_unmounts_and_deletes_and_is_idempotent(nsdir: Path) -> None:
    path = nsdir / "gone"
    netns.create_sealed_netns(str(path))
    assert _libc.is_mount_point(path)
    netns.remove_netns(str(path))
    assert not path.exists()
    assert not _libc.is_mount_point(path)
    netns.remove_netns(str(path))


def test_netns_create_is_faster_than_the_unshare_cli(nsdir: Path) -> None:
    ours, cli, removal = [], [], []
    for i in range(10):
        start = time.perf_counter()
        netns.create_sealed_netns(str(nsdir / f"ours-{i}"))
        ours.append(time.perf_counter() - start)
        (nsdir / f"cli-{i}").write_text("")
        start = time.perf_counter()
        subprocess.run(["unshare", f"--net={nsdir / f'cli-{i}'}", "true"], check=True)
        cli.append(time.perf_counter() - start)
    for path in list(nsdir.iterdir()):
        start = time.perf_counter()
        netns.remove_netns(str(path))
        removal.append(time.perf_counter() - start)
    median = {
        k: sorted(v)[len(v) // 2] * 1000 for k, v in (("ours", ours), ("cli", cli), ("remove", removal))
    }
    print(
        f"\nnetns create median {median['ours']:.2f} ms (unshare CLI {median['cli']:.2f} ms), "
        f"remove {median['remove']:.3f} ms"
    )
    assert median["ours"] < median["cli"]
