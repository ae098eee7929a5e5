"""The microvm warm pool (``SHELLS_MICROVM_WARM_POOL_SIZE``): a create claims a restored VM that
ran nothing of anyone's, each VM serves one shell only, the pool refills with a new VM, and a
server killed with a VM in the pool claims it afterwards as if nothing happened.

Its own server: a microvm pool of one, no container pool (which would keep the 2 shared cores busy).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shells.runtime.microvm.backend import MicrovmBackend
from shells.sdk import Shell
from shells.settings import Settings
from shells.store.repository import Store

from .harness import ServerProcess, running_server

MISSING = MicrovmBackend.available()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no microvm class on this host: {MISSING}")


@pytest.fixture(scope="module")
def pool_server(data_root: Path) -> Iterator[ServerProcess]:
    env = {"SHELLS_MICROVM_WARM_POOL_SIZE": "1", "SHELLS_QUOTA_MAX_VCPUS": "40"}
    with running_server(data_root / "microvm-pool", warm_pool=0, env=env) as srv:
        yield srv


def pooled_vm(server: ServerProcess, not_in: frozenset[str] = frozenset(), timeout_s: float = 180.0) -> str:
    """The id of the pool's running VM (once there is one that is not in ``not_in``)."""
    store = Store(server.record_url)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready = [
                s.id
                for s in store.list_shells(None, pooled=True)
                if s.runtime == "microvm" and s.state == "running" and s.id not in not_in
            ]
            if ready:
                return ready[0]
            time.sleep(0.2)
    finally:
        store.close()
    raise AssertionError("the microvm pool did not fill")


def qemu_pid(server: ServerProcess, shell_id: str) -> int:
    run_dir = Settings(data_dir=server.data_dir).run_dir
    return int((run_dir / "microvm" / shell_id / "qemu.pid").read_text(encoding="utf-8"))


def run(shell: Shell, script: str) -> str:
    out = shell.commands.run(script)
    assert out.exit_code == 0, out.stderr
    return str(out.stdout)


def test_a_create_claims_a_pooled_vm_that_serves_one_shell_only(pool_server: ServerProcess) -> None:
    with pool_server.client() as client:
        first = pooled_vm(pool_server)
        assert first not in {s.id for s in client.list()}  # listed to nobody while pooled
        a = client.create("python", runtime="microvm")
        b: Shell | None = None
        try:
            assert a.id == first and a.info.state == "running" and a.info.runtime == "microvm"
            assert a.id in {s.id for s in client.list()}
            assert run(a, "echo hi") == "hi\n"
            second = pooled_vm(pool_server, not_in=frozenset({first}))  # the pool refills with another VM
            b = client.create("python", runtime="microvm")
            assert b.id == second != a.id
            assert qemu_pid(pool_server, a.id) != qemu_pid(pool_server, b.id)
            run(a, "echo mine > /tmp/a; echo mine > /workspace/a")
            rand = "head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'"
            assert run(b, "cat /tmp/a /workspace/a 2>/dev/null; echo end") == "end\n"
            assert run(a, rand) != run(b, rand)
            # A create the pool does not hold (another network) restores a VM of its own.
            c = client.create("python", runtime="microvm", network="localhost")
            try:
                assert c.id not in (first, second) and run(c, "echo hi") == "hi\n"
            finally:
                c.kill()
        finally:
            a.kill()
            if b is not None:
                b.kill()


def test_a_server_killed_with_a_vm_in_the_pool_hands_it_out_after_restart(pool_server: ServerProcess) -> None:
    pooled = pooled_vm(pool_server)
    pool_server.kill9()
    pool_server.start()
    with pool_server.client() as client:
        shell = client.create("python", runtime="microvm")
        try:
            assert shell.id == pooled
            assert run(shell, "echo hi") == "hi\n"
        finally:
            shell.kill()
