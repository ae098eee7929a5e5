"""The dataplane under real container shells: crun joins the netns the backend attached."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from shells.domain.execution import ExecExit, ExecSpec, OutputChunk
from shells.domain.network import NetworkAccess, NetworkMode
from shells.domain.shapes import SHAPES
from shells.runtime.backend import ShellSpec
from shells.runtime.container.backend import ContainerBackend
from shells.runtime.network.rtnl import Netlink
from shells.settings import Settings
from tests.support.fake_internet import FakeInternet

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (crun, netns, nftables)")

TEMPLATE = "base:1"
FETCH = (
    'python3 -c "import socket,sys; s=socket.create_connection((sys.argv[1], 80), timeout=3); '
    'print(s.recv(100).decode().strip())" {} 2>&1 | tail -1'
)
# ifconfig eth0 down, as root inside the shell's user namespace
SIOCSIFFLAGS = (
    'python3 -c "import socket,fcntl,struct; s=socket.socket(); '
    "fcntl.ioctl(s, 0x8914, struct.pack('16sH22x', b'eth0', 0))\" 2>&1 | tail -1"
)


@pytest.fixture(scope="module")
def backend() -> Iterator[ContainerBackend]:
    top = Path(tempfile.mkdtemp(prefix="shells-test-netct-", dir="/var/tmp"))
    top.chmod(0o755)  # the shells' unprivileged uids traverse the run dir below it
    old = os.environ.get("SHELLS_RUN_DIR")
    os.environ["SHELLS_RUN_DIR"] = str(top / "run")
    b = ContainerBackend(Settings(data_dir=top / "data", pool_image_gib=4), say=lambda _: None)

    async def up() -> None:
        await b.prepare()
        await b.ensure_template(TEMPLATE)

    try:
        anyio.run(up)
        yield b
    finally:
        anyio.run(b.purge)
        if old is None:
            os.environ.pop("SHELLS_RUN_DIR", None)
        else:
            os.environ["SHELLS_RUN_DIR"] = old
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def internet() -> Iterator[FakeInternet]:
    with FakeInternet() as net:
        yield net


def sh(backend: ContainerBackend, host_id: str, command: str) -> tuple[int, str]:
    async def run() -> tuple[int, str]:
        out, code = b"", -1
        async for event in backend.exec(host_id, ExecSpec(command=command, timeout_s=30)):
            if isinstance(event, OutputChunk):
                out += event.data
            elif isinstance(event, ExecExit):
                code = event.exit_code
        return code, out.decode()

    return anyio.run(run)


def spec(host_id: str, policy: NetworkAccess) -> ShellSpec:
    return ShellSpec(host_id=host_id, template=TEMPLATE, shape=next(iter(SHAPES.values())), network=policy)


def test_an_internet_container_reaches_the_outside_through_nat_and_cannot_rewire_itself(
    backend: ContainerBackend, internet: FakeInternet
) -> None:
    anyio.run(backend.create, spec("ctnet1", NetworkAccess(NetworkMode.INTERNET)))
    try:
        gateway = backend.network.gateway_addresses()[0]
        assert sh(backend, "ctnet1", "cat /etc/resolv.conf") == (0, f"nameserver {gateway}\n")
        assert sh(backend, "ctnet1", "echo x > /etc/resolv.conf")[0] != 0  # read-only
        assert sh(backend, "ctnet1", FETCH.format(internet.a)) == (
            0,
            f"{internet.a}:80 from {internet.host_address}\n",
        )
        assert "Connection refused" in sh(backend, "ctnet1", FETCH.format(internet.metadata))[1]
        assert "Operation not permitted" in sh(backend, "ctnet1", SIOCSIFFLAGS)[1]
        assert sh(backend, "ctnet1", FETCH.format(internet.b))[1].startswith(f"{internet.b}:80")
    finally:
        anyio.run(backend.destroy, "ctnet1")
    backend.network.settle()
    with Netlink() as nl:
        assert [link.name for link in nl.links() if link.alias == "ctnet1"] == []
    assert backend.network.policy_of("ctnet1") is None


def test_set_network_changes_a_running_container_without_a_restart(
    internet: FakeInternet, backend: ContainerBackend
) -> None:
    anyio.run(backend.create, spec("ctnet2", NetworkAccess(NetworkMode.SEALED)))
    try:
        pid_before = sh(backend, "ctnet2", "cat /proc/1/stat | cut -d' ' -f22")[1]
        assert "Network is unreachable" in sh(backend, "ctnet2", FETCH.format(internet.a))[1]
        anyio.run(backend.set_network, "ctnet2", NetworkAccess(NetworkMode.INTERNET, (internet.a,)))
        assert sh(backend, "ctnet2", FETCH.format(internet.a))[1].startswith(f"{internet.a}:80")
        assert "Connection refused" in sh(backend, "ctnet2", FETCH.format(internet.b))[1]
        anyio.run(backend.set_network, "ctnet2", NetworkAccess(NetworkMode.SEALED))
        assert "Network is unreachable" in sh(backend, "ctnet2", FETCH.format(internet.a))[1]
        assert sh(backend, "ctnet2", "cat /proc/1/stat | cut -d' ' -f22")[1] == pid_before  # same PID 1
    finally:
        anyio.run(backend.destroy, "ctnet2")
