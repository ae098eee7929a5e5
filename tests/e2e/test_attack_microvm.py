"""Attacks on a microvm's host side from inside the guest, and its exposed ports, end to end.

One server and one VM for the whole module (TCG is slow): the guest's root writes forged frames into
the agent's virtio port, floods ``ttyS0``, and serves a page through the ingress.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shells.runtime.microvm.backend import MicrovmBackend
from shells.runtime.microvm.console import CONSOLE_BYTES
from shells.sdk import Shell, Shells

from .harness import ServerProcess, leak_checked_server

MISSING = MicrovmBackend.available()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no microvm class on this host: {MISSING}")

PAGE = "hello-from-the-vm"


@pytest.fixture(scope="module")
def vm_server(data_root: Path) -> Iterator[ServerProcess]:
    with leak_checked_server(data_root / "attack-microvm", warm_pool=0) as srv:
        yield srv


@pytest.fixture(scope="module")
def vm_client(vm_server: ServerProcess) -> Iterator[Shells]:
    with vm_server.client() as c:
        yield c


@pytest.fixture(scope="module")
def vm(vm_client: Shells) -> Iterator[Shell]:
    shell = vm_client.create("python", runtime="microvm", network="localhost", idle_timeout_s=0)
    yield shell
    shell.kill()


def sh(shell: Shell, script: str, timeout_s: float = 60) -> str:
    out = shell.commands.run(script, timeout_s=timeout_s)
    assert out.exit_code == 0, (out.stdout, out.stderr)
    return str(out.stdout)


def test_an_exposed_port_of_a_vm_serves_through_the_ingress(
    vm_server: ServerProcess, vm_client: Shells, vm: Shell
) -> None:
    sh(
        vm,
        f"mkdir -p /srv && echo {PAGE} > /srv/index.html && "
        "setsid nohup python3 -m http.server 8000 --directory /srv >/dev/null 2>&1 < /dev/null & "
        "for i in $(seq 100); do python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 8000))' "
        "2>/dev/null && exit 0; sleep 0.1; done; exit 1",
    )
    port = vm.ports.expose(8000)
    assert port.token
    base = f"http://127.0.0.1:{vm_server.ingress_port}"
    with_token = {"Host": f"8000-{vm.id}.localhost", "X-Shells-Port-Token": port.token}
    with httpx.Client(base_url=base, timeout=30) as web:
        by_host = web.get("/", headers=with_token)
        assert by_host.status_code == 200, by_host.text
        assert PAGE in by_host.text
        by_path = web.get(f"/{vm.id}/8000/", headers={"X-Shells-Port-Token": port.token})
        assert by_path.status_code == 200 and PAGE in by_path.text
        assert web.get("/", headers={"Host": f"8000-{vm.id}.localhost"}).status_code == 401

        vm.pause()
        try:
            paused = web.get("/", headers=with_token)
            assert paused.status_code == 409, paused.text
            assert paused.json()["error"]["code"] == "invalid_state"
            assert "paused" in paused.json()["error"]["message"]
            assert vm_client.get(vm.id).info.state == "paused"  # the request did not resume it
        finally:
            vm.resume()
        again = web.get("/", headers=with_token)
        assert again.status_code == 200 and PAGE in again.text


def test_a_console_flood_is_capped_on_the_host_and_logs_show_its_end(
    vm_server: ServerProcess, vm: Shell
) -> None:
    console = vm_server.data_dir / "microvm" / "shells" / vm.id / "console.log"
    line = "flood " * 12
    written = int(sh(vm, f"yes '{line}' | timeout 15 tee /dev/ttyS0 | wc -c; echo THE-END > /dev/ttyS0"))
    assert written > 3 * CONSOLE_BYTES, f"the flood wrote only {written} bytes: it proves nothing"
    assert console.stat().st_size <= CONSOLE_BYTES
    logs = vm.logs()
    assert "THE-END" in logs[-200:]
    assert line.strip() in logs
    assert console.stat().st_size <= CONSOLE_BYTES
    sizes = sorted(p.stat().st_size for p in console.parent.iterdir() if p.is_file())
    assert [p.name for p in console.parent.iterdir() if p.name.endswith(".partial")] == []
    print(f"flood of {written} bytes; files of the shell's dir: {sizes}")
