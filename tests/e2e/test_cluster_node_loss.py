"""Node loss and fencing on a real cluster: the Kubernetes API server, two node agents on their own
"machines" (network namespaces on a test bridge) publishing their Leases in regions ``eu`` and
``us``, and a control plane that finds them by those Leases (no ``--node`` list).

- A node agent stopped (SIGSTOP) past its Lease: its shell becomes ``lost`` naming the node, within
  seconds, while the other node's shell keeps answering. Continued (SIGCONT), the node is registered
  again under a new generation: the old shell stays ``lost``, is destroyed on the node, and a call
  carrying the old generation is refused by the node.
- A node agent killed (SIGKILL): the same loss, and the other node untouched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import anyio
import pytest

from shells.domain.errors import Unavailable, UnknownRegion
from shells.node.client import NodeClient
from shells.node.wire import Signer, load_secret
from shells.sdk import NodeInfo, Shell, Shells
from tests.support.kube import ADMIN_TOKEN, KubeAPI
from tests.support.netns_forward import forwarded_into

from .harness import ServerProcess, serving
from .node_link import NodeMachine, cluster_secret, node_machine

LEASE_S = 3.0
LOSS_S = LEASE_S + 6.0
"""A node's shells are lost within this of its Lease's last renewal (one lease, then the next
look and duty pass, on a loaded machine)."""


@pytest.fixture(scope="module")
def cluster(
    kube_api: KubeAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, NodeMachine, NodeMachine]]:
    root = Path(tmp_path_factory.mktemp("node-loss"))
    secret = cluster_secret(root)
    token_file = root / "kube-token"
    token_file.write_text(ADMIN_TOKEN, encoding="utf-8")
    port = int(kube_api.url.rsplit(":", 1)[1])
    kube = {
        "SHELLS_KUBE_URL": kube_api.url,
        "SHELLS_KUBE_TOKEN_FILE": str(token_file),
        "SHELLS_KUBE_CA_FILE": kube_api.ca_file,
        "SHELLS_LEASE_DURATION_S": str(LEASE_S),
    }
    with ExitStack() as stack:
        a = stack.enter_context(node_machine(root / "a", secret))
        b = stack.enter_context(node_machine(root / "b", secret))
        for machine, name, region in ((a, "node-a", "eu"), (b, "node-b", "us")):
            stack.enter_context(forwarded_into(machine.netns, port))  # its Kubernetes API
            machine.start(name, kube | {"SHELLS_REGION": region})
        env = kube | {"SHELLS_CLUSTER_SECRET_FILE": str(secret), "SHELLS_DISCOVER_NODES": "true"}
        control = stack.enter_context(serving(ServerProcess(root / "control", warm_pool=0, env=env)))
        _until(lambda: _states(control) == {"node-a": "ready", "node-b": "ready"}, 30, "both nodes ready")
        yield control, a, b


def _until(predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout_s, f"{what}: not within {timeout_s} s"
        time.sleep(0.2)
    return time.monotonic() - start


def _nodes(control: ServerProcess) -> dict[str, NodeInfo]:
    with control.client() as client:
        return {n.name: n for n in client.nodes.list()}


def _states(control: ServerProcess) -> dict[str, str]:
    return {name: n.state for name, n in _nodes(control).items()}


def _state(control: ServerProcess, shell_id: str) -> tuple[str, str]:
    with control.client() as client:
        info = client.get(shell_id).info
        return info.state, info.state_reason


def _holds(machine: NodeMachine, shell_id: str) -> bool:
    return (machine.data_dir / "storage" / "pool" / "shells" / shell_id).exists()


def _echo(shell: Shell, text: str) -> str:
    return shell.commands.run("echo", [text]).stdout


def _lost_within(control: ServerProcess, shell_id: str, node: str) -> float:
    took = _until(lambda: _state(control, shell_id)[0] == "lost", LOSS_S, f"{shell_id} lost")
    reason = _state(control, shell_id)[1]
    assert node in reason and "Lease expired" in reason, reason
    return took


def test_a_stopped_node_loses_its_shells_and_on_return_is_fenced_and_cleaned(
    cluster: tuple[ServerProcess, NodeMachine, NodeMachine],
) -> None:
    control, a, _b = cluster
    with control.client() as client:
        _stop_and_continue(control, client, a)


def _stop_and_continue(control: ServerProcess, client: Shells, a: NodeMachine) -> None:
    old, other = client.create("bash", region="eu"), client.create("bash", region="us")
    assert old.info.node == "node-a" and other.info.node == "node-b"
    assert _holds(a, old.id)
    generation = _nodes(control)["node-a"].generation
    assert a.proc is not None
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        _lost_within(control, old.id, "node-a")
        print(f"lost {time.monotonic() - stopped:.1f} s after the stop (lease {LEASE_S:g} s)")
        gone = _nodes(control)["node-a"]
        assert gone.state == "gone" and "node-a" in gone.reason
        assert _state(control, other.id)[0] == "running"
        assert _echo(other, "still here") == "still here\n"
        with pytest.raises(UnknownRegion):
            client.create("bash", region="eu")  # placement never picks a gone node
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    _until(lambda: _nodes(control)["node-a"].state == "ready", LOSS_S + 10, "node-a registered again")
    back = _nodes(control)["node-a"]
    assert back.generation == generation + 1
    assert _state(control, old.id)[0] == "lost"  # not resurrected
    _until(lambda: not _holds(a, old.id), 10, "the lost shell destroyed on the returning node")
    assert _stale_call_refused(a, generation)
    fresh = client.create("bash", region="eu")  # and placed on again
    assert fresh.info.node == "node-a"
    assert _echo(fresh, "back") == "back\n"
    fresh.kill()
    other.kill()


def _stale_call_refused(machine: NodeMachine, generation: int) -> bool:
    """A call made under the old registration is refused; one under the new one answers."""

    async def inventory(gen: int) -> object:
        client = NodeClient(machine.url, Signer(load_secret(machine.secret_file)))
        client.generation = gen
        try:
            return await client.call("container", "inventory")
        finally:
            await client.aclose()

    with pytest.raises(Unavailable, match="generation"):
        anyio.run(inventory, generation)
    anyio.run(inventory, generation + 1)
    return True


def test_a_killed_node_loses_its_shells_and_the_other_node_keeps_serving(
    cluster: tuple[ServerProcess, NodeMachine, NodeMachine],
) -> None:
    control, a, _b = cluster
    with control.client() as client:
        _kill(control, client, a)


def _kill(control: ServerProcess, client: Shells, a: NodeMachine) -> None:
    doomed, other = client.create("bash", region="eu"), client.create("bash", region="us")
    assert a.proc is not None
    a.proc.kill()
    a.proc.wait()
    took = _lost_within(control, doomed.id, "node-a")
    print(f"lost {took:.1f} s after SIGKILL (lease {LEASE_S:g} s)")
    assert _echo(other, "fine") == "fine\n"
    listed = subprocess.run(
        [sys.executable, "-m", "shells.cli.main", "admin", "node", "ls", "--json"],
        capture_output=True, check=True,
        env=os.environ | {"SHELLS_BASE_URL": control.url, "SHELLS_API_TOKEN": control.token},
    )  # fmt: skip
    nodes = {n["name"]: n for n in json.loads(listed.stdout)}
    assert nodes["node-a"]["state"] == "gone" and nodes["node-b"]["state"] == "ready"
    assert nodes["node-b"]["region"] == "us" and "container" in nodes["node-b"]["classes"]
    assert nodes["node-b"]["shells"] >= 1 and nodes["node-b"]["memory_free_mib"] > 0
    assert nodes["node-a"]["cordoned"] is False
    events = [e for e in doomed.events() if e.action == "node_lost"]
    assert events and events[-1].outcome == "lost"
    other.kill()
