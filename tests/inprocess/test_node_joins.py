"""A node that joins a running control plane with an isolation class no node offered at its start
brings that class in: before it, a create of the class is refused (``feature_unavailable``); once
its Lease is live and it is registered, the class is listed and placed, on that node. Real node
agents serving fake nodes on loopback; the Leases are a stand-in listing whoever joined."""

from __future__ import annotations

import secrets
from contextlib import ExitStack
from pathlib import Path
from typing import cast

import anyio
import pytest

from shells.api.app import create_app
from shells.cluster.membership import Membership
from shells.domain.isolation import Runtime
from shells.domain.nodes import NodeOffer
from shells.node import Node
from shells.node.wire import Signer
from shells.sdk import AsyncShells, FeatureUnavailable
from shells.server import build_control
from shells.settings import Settings

from ..support.fake_node import FakeNode, NullNetwork
from ..support.inprocess import Instance
from ..support.remote_node import agent_at

pytestmark = pytest.mark.anyio


class Joined:
    """What ``Membership`` tells the registry, for nodes the test lets join: every one is live."""

    def __init__(self) -> None:
        self.offers: list[NodeOffer] = []
        self.kube = self

    def live(self) -> list[NodeOffer]:
        return list(self.offers)

    async def run(self, every_s: float) -> None:
        await anyio.sleep_forever()

    async def aclose(self) -> None:
        pass


async def _runtimes(client: AsyncShells) -> set[str]:
    return {r.runtime for r in await client.runtimes() if r.available}


async def test_a_class_first_offered_by_a_node_that_joins_later_is_placed_there(tmp_path: Path) -> None:
    secret = secrets.token_urlsafe(48).encode()
    secret_file = tmp_path / "cluster-secret"
    secret_file.write_bytes(secret)
    with ExitStack() as stack:
        first = FakeNode(tmp_path / "a")
        url_a = stack.enter_context(agent_at(Node("node-a", [first], NullNetwork()), Signer(secret)))
        settings = Settings(
            data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", warm_pool_size=0, ingress_port=None,
            idle_timeout_s=0, budget_check_s=3600.0, nodes=(url_a,), cluster_secret_file=secret_file,
        )  # fmt: skip
        control = build_control(settings)
        assert control.registry is not None
        joined = Joined()
        control.registry.membership = cast(Membership, joined)
        instance = Instance(create_app(control), control, first, "")
        async with instance.app.router.lifespan_context(instance.app):
            instance.token = settings.admin_token_path.read_text(encoding="utf-8").strip()
            async with instance.client() as client:
                assert "microvm" not in await _runtimes(client)
                with pytest.raises(FeatureUnavailable):
                    await client.create("python", runtime="microvm")

                vm = FakeNode(tmp_path / "b", runtime=Runtime.MICROVM)
                url_b = stack.enter_context(agent_at(Node("node-b", [vm], NullNetwork()), Signer(secret)))
                classes = frozenset({Runtime.MICROVM})
                address = url_b.removeprefix("http://")
                joined.offers.append(
                    NodeOffer("node-b", address, "local", "", classes, "", 64, 64, 1 << 20, 1 << 20)
                )
                with anyio.fail_after(15):
                    while {n.name: n.state for n in await client.nodes.list()}.get("node-b") != "ready":
                        await anyio.sleep(0.1)
                assert "microvm" in await _runtimes(client)
                shell = await client.create("python", runtime="microvm")
                assert (shell.info.runtime, shell.info.node) == ("microvm", "node-b")
                assert vm.shell_dir(shell.id).exists()
                assert (await shell.commands.run("echo", ["joined"])).stdout == "joined\n"
                plain = await client.create("bash")  # the first node's class is placed as before
                assert plain.info.node == "node-a"
