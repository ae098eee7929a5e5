"""A paused microvm moves between machines through the object store with its memory: two node
agents on their own "machines" with a real S3 server (the cluster of ``test_node_drain``), a VM on
node-a running a process that holds a value only in RAM is paused and drained by the CLI; on node-b
it is paused, resumes, and the same process answers with the same value. Then node-a's agent is
killed with SIGKILL, and a VM paused there is recovered on node-b from the state saved when it
paused, memory included."""

from __future__ import annotations

import json
import time

import pytest

from shells.runtime.microvm.backend import MicrovmBackend
from shells.sdk import Shell, Shells

from .harness import ServerProcess
from .node_link import NodeMachine
from .test_durable_microvm import KEEPER, sh
from .test_node_drain import (  # noqa: F401 (fixtures)
    cli,
    control,
    lose_node_a,
    machines,
    on_node_a,
    store_server,
)

MISSING = MicrovmBackend.available()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no microvm class on this host: {MISSING}")


def keeping(client: Shells, server: ServerProcess) -> tuple[Shell, bytes]:
    """A VM on node-a running the keeper (``test_durable_microvm``), and the value it holds."""
    vm = on_node_a(client, server, "python", runtime="microvm")
    vm.files.write("/workspace/keeper.py", KEEPER.encode())
    sh(vm, "echo on-node-a > /root/marker; (python3 /workspace/keeper.py > /dev/null 2>&1 &)")
    deadline = time.monotonic() + 30
    while sh(vm, "test -s /workspace/token && cat /workspace/token || true") == "":
        assert time.monotonic() < deadline, "the keeper process did not start"
        time.sleep(0.2)
    return vm, vm.files.read("/workspace/token")


def still_keeping(vm: Shell, token: bytes) -> None:
    """The VM's files and the keeper's memory are what they were on node-a."""
    assert sh(vm, "cat /root/marker") == "on-node-a\n"
    sh(vm, "kill -USR1 $(cat /workspace/keeper.pid)")
    deadline = time.monotonic() + 30
    while (echo := sh(vm, "cat /workspace/echo 2>/dev/null || true").encode()) != token:
        assert time.monotonic() < deadline, f"the keeper answered {echo!r}, not {token!r}"
        time.sleep(0.2)


def test_drain_moves_a_paused_microvm_with_its_memory(
    control: ServerProcess,  # noqa: F811
    machines: tuple[NodeMachine, NodeMachine],  # noqa: F811
) -> None:
    a, b = machines
    client = control.client()
    vm, token = keeping(client, control)
    try:
        vm.pause()

        done = cli(control, "admin", "node", "drain", "node-a", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        assert {m["shell"]: m["to"] for m in json.loads(done.stdout)["moved"]} == {vm.id: "node-b"}
        assert not (a.data_dir / "microvm" / "shells" / vm.id).exists()  # gone from node-a
        assert (b.data_dir / "microvm" / "shells" / vm.id).exists()

        assert vm.refresh().state == "paused" and vm.info.node == "node-b"
        vm.resume()
        still_keeping(vm, token)
    finally:
        vm.kill()
        cli(control, "admin", "node", "uncordon", "node-a")


def test_a_lost_nodes_paused_microvm_is_recovered_with_its_memory(
    control: ServerProcess,  # noqa: F811
    machines: tuple[NodeMachine, NodeMachine],  # noqa: F811
) -> None:
    a, _ = machines
    client = control.client()
    vm, token = keeping(client, control)
    vm.pause()
    lose_node_a(control, a, vm)
    try:
        info = vm.recover()
        assert (info.state, info.node) == ("paused", "node-b")
        vm.resume()
        still_keeping(vm, token)
    finally:
        vm.kill()
