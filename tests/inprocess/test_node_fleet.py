"""The control plane's view of its nodes, through real node agents serving fake nodes on loopback:
a ``--node`` agent that stops answering past the grace is gone, its shells ``lost`` with the node
named and nothing else disturbed, placement skips it; when it answers again it is registered under
a new generation and the lost shell is destroyed on it, not brought back, while its snapshots stay
(a create from one waits for it with a typed 503, then goes there); and a node refuses every
call made under an older registration generation than the one it was fenced with."""

from __future__ import annotations

import secrets
from contextlib import ExitStack
from pathlib import Path

import anyio
import pytest

from shells.api.app import create_app
from shells.domain.errors import SnapshotUnreachable, Unavailable
from shells.node import Node
from shells.node.remote import RemoteBackend
from shells.node.wire import Signer
from shells.sdk import AsyncShell, AsyncShells
from shells.server import build_control
from shells.settings import Settings

from ..support.fake_node import FakeNode, NullNetwork
from ..support.inprocess import Instance
from ..support.remote_node import agent_at, agent_serving

GRACE_S = 1.5
pytestmark = pytest.mark.anyio


async def _until(check: object, timeout_s: float, what: str) -> None:
    assert callable(check)
    with anyio.fail_after(timeout_s):
        while not await check():
            await anyio.sleep(0.1)
    _ = what


async def test_a_node_that_stops_answering_loses_its_shells_and_nothing_else(tmp_path: Path) -> None:
    secret = secrets.token_urlsafe(48).encode()
    secret_file = tmp_path / "cluster-secret"
    secret_file.write_bytes(secret)
    with ExitStack() as a_side, ExitStack() as b_side:
        fake_a, fake_b = FakeNode(tmp_path / "a"), FakeNode(tmp_path / "b")
        url_a = a_side.enter_context(agent_at(Node("node-a", [fake_a], NullNetwork()), Signer(secret)))
        node_b = Node("node-b", [fake_b], NullNetwork())
        url_b = b_side.enter_context(agent_at(node_b, Signer(secret)))

        def restart_b() -> None:
            port = int(url_b.rsplit(":", 1)[1])
            b_side.enter_context(agent_at(node_b, Signer(secret), port))

        settings = Settings(
            data_dir=tmp_path / "data",
            cache_dir=tmp_path / "cache",
            warm_pool_size=0,
            ingress_port=None,
            idle_timeout_s=0,
            budget_check_s=3600.0,
            nodes=(url_a, url_b),
            cluster_secret_file=secret_file,
            lease_duration_s=GRACE_S,
        )
        instance = Instance(create_app(control := build_control(settings)), control, fake_a, "")
        async with instance.app.router.lifespan_context(instance.app):
            instance.token = settings.admin_token_path.read_text(encoding="utf-8").strip()
            async with instance.client() as client:
                lost, snap = await _scenario(client, b_side)
                await anyio.to_thread.run_sync(restart_b)
                await _returns_fenced(client, fake_b, lost, snap)


async def _states(client: AsyncShells) -> dict[str, str]:
    return {n.name: n.state for n in await client.nodes.list()}


async def _scenario(client: AsyncShells, b_side: ExitStack) -> tuple[AsyncShell, str]:
    async def both_ready() -> bool:
        return await _states(client) == {"node-a": "ready", "node-b": "ready"}

    await _until(both_ready, 10, "both nodes registered")
    first, second = await client.create("bash"), await client.create("bash")
    on = {first.info.node: first, second.info.node: second}
    assert set(on) == {"node-a", "node-b"}, "round-robin placement uses both nodes"
    await on["node-b"].files.write("/workspace/kept.txt", b"taken on b")
    snap = (await on["node-b"].snapshot()).id  # no object store: it lives on node-b alone
    await anyio.to_thread.run_sync(b_side.close)  # node-b's agent stops answering

    async def lost() -> bool:
        return (await on["node-b"].refresh()).state == "lost"

    await _until(lost, GRACE_S + 5, "node-b's shell lost")
    reason = on["node-b"].info.state_reason
    assert "node node-b is gone" in reason and "stopped answering" in reason, reason
    assert (await on["node-a"].refresh()).state == "running"
    assert (await on["node-a"].commands.run("echo", ["fine"])).stdout == "fine\n"
    nodes = {n.name: n for n in await client.nodes.list()}
    assert nodes["node-b"].state == "gone" and nodes["node-b"].reason == reason
    assert nodes["node-a"].shells == 1 and not nodes["node-a"].cordoned
    events = [e for e in await on["node-b"].events() if e.action == "node_lost"]
    assert [e.outcome for e in events] == ["lost"]
    for _ in range(3):  # placement never picks the gone node
        assert (await client.create("bash")).info.node == "node-a"
    with pytest.raises(SnapshotUnreachable, match="retry once its node is back"):
        await client.create("bash", snapshot=snap)  # a typed 503, not a shell that fails
    return on["node-b"], snap


async def _returns_fenced(client: AsyncShells, fake_b: FakeNode, lost: AsyncShell, snap: str) -> None:
    assert fake_b.shell_dir(lost.id).exists()  # still on the node while it was away

    async def registered() -> bool:
        return {n.name: n for n in await client.nodes.list()}["node-b"].state == "ready"

    await _until(registered, 10, "node-b registered again")
    assert {n.name: n for n in await client.nodes.list()}["node-b"].generation == 2
    assert not fake_b.shell_dir(lost.id).exists()  # destroyed before it was ready
    assert (await lost.refresh()).state == "lost"
    assert (fake_b.root / "snapshots" / snap).exists()  # fencing destroys shells, not snapshots
    copy = await client.create("bash", snapshot=snap)  # and the node that holds it takes it
    assert copy.info.node == "node-b"
    assert await copy.files.read("/workspace/kept.txt") == b"taken on b"


async def test_a_node_refuses_calls_of_an_older_generation(tmp_path: Path) -> None:
    with agent_serving(FakeNode(tmp_path)) as node:
        backend = node.backends[0]
        assert isinstance(backend, RemoteBackend)
        client = backend.client
        assert await client.call("node", "fence", 2) == 2
        client.generation = 1
        with pytest.raises(Unavailable, match="generation"):
            await client.call(backend.target, "inventory")
        with pytest.raises(Unavailable, match="stale"):
            await client.call("node", "fence", 1)
        assert (await client.call("node", "hello"))["name"] == "fake"  # reading is anyone's
        client.generation = 2
        await client.call(backend.target, "inventory")
        await node.close()
