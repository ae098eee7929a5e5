"""A paused microvm moves between machines through the object store with its memory: two node
agents on their own "machines" with a real S3 server (the cluster of ``test_node_drain``), a VM on
node-a running a process that holds a value only in RAM is paused and drained by the CLI; on node-b
it is paused, resumes, and the same process answers with the same value."""

from __future__ import annotations

import json
import time

import pytest

from shells.runtime.microvm.backend import MicrovmBackend

from .harness import ServerProcess
from .node_link import NodeMachine
from .test_durable_microvm import KEEPER, sh
from .test_node_drain import cli, control, machines, on_node_a, store_server  # noqa: F401 (fixtures)

MISSING = MicrovmBackend.available()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no microvm class on this host: {MISSING}")


def test_drain_moves_a_paused_microvm_with_its_memory(
    control: ServerProcess,  # noqa: F811
    machines: tuple[NodeMachine, NodeMachine],  # noqa: F811
) -> None:
    a, b = machines
    client = control.client()
    vm = on_node_a(client, control, "python", runtime="microvm")
    try:
        vm.files.write("/workspace/keeper.py", KEEPER.encode())
        sh(vm, "echo on-node-a > /root/marker; (python3 /workspace/keeper.py > /dev/null 2>&1 &)")
        deadline = time.monotonic() + 30
        while sh(vm, "test -s /workspace/token && cat /workspace/token || true") == "":
            assert time.monotonic() < deadline, "the keeper process did not start"
            time.sleep(0.2)
        token = vm.files.read("/workspace/token")
        vm.pause()

        done = cli(control, "admin", "node", "drain", "node-a", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        assert {m["shell"]: m["to"] for m in json.loads(done.stdout)["moved"]} == {vm.id: "node-b"}
        assert not (a.data_dir / "microvm" / "shells" / vm.id).exists()  # gone from node-a
        assert (b.data_dir / "microvm" / "shells" / vm.id).exists()

        assert vm.refresh().state == "paused" and vm.info.node == "node-b"
        vm.resume()
        assert sh(vm, "cat /root/marker") == "on-node-a\n"
        sh(vm, "kill -USR1 $(cat /workspace/keeper.pid)")
        deadline = time.monotonic() + 30
        while (echo := sh(vm, "cat /workspace/echo 2>/dev/null || true").encode()) != token:
            assert time.monotonic() < deadline, f"the keeper answered {echo!r}, not {token!r}"
            time.sleep(0.2)
    finally:
        vm.kill()
        cli(control, "admin", "node", "uncordon", "node-a")
