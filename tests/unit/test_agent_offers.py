"""The control role's view of its node agents' offers: asked at start, placements counted against
them for a while (across refreshes), asked again when stale, and a node that does not answer keeps
its last offer."""

from __future__ import annotations

import asyncio

import pytest

from shells.control import agent_offers
from shells.control.agent_offers import AgentOffers
from shells.control.placement import place
from shells.domain.errors import Unavailable
from shells.domain.isolation import Runtime
from shells.domain.nodes import NodeOffer
from shells.domain.shapes import get_shape
from shells.node import Node
from tests.support.fake_node import NullNetwork

SMALL = get_shape("s-1vcpu-512mb")


def offer(name: str, region: str, memory: int = 8192) -> NodeOffer:
    return NodeOffer(name, "", region, "", frozenset({Runtime.CONTAINER}), "", 2, 2, memory, 100_000)


def agent(name: str, answers: list[NodeOffer | Exception]) -> Node:
    def ask() -> NodeOffer | None:
        answer = answers[0] if len(answers) == 1 else answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return Node(name, [], NullNetwork(), local=False, offer=ask)


def members(*nodes: Node) -> dict[str, Node]:
    return {n.name: n for n in nodes}


def test_placements_are_counted_across_refreshes_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    offers = AgentOffers(members(agent("eu-1", [offer("eu-1", "eu")]), agent("eu-2", [offer("eu-2", "eu")])))
    chosen = []
    for i in range(6):
        node = place(offers.live(), "eu", Runtime.CONTAINER, SMALL)
        offers.took(node, SMALL)
        chosen.append(node.name)
        if i == 2:
            offers.refresh()  # the nodes measure alike again: what was placed still counts
    assert chosen == ["eu-1", "eu-2"] * 3  # equal nodes take turns
    monkeypatch.setattr(agent_offers, "COUNTED_S", 0.0)
    assert {o.memory_free_mib for o in offers.live()} == {8192}  # then the nodes' own word again


def test_a_node_that_does_not_answer_keeps_its_last_offer_and_a_stale_view_is_refreshed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    offers = AgentOffers(
        members(agent("us-1", [offer("us-1", "us"), Unavailable("gone"), offer("us-1", "us", 1024)]))
    )
    offers.refresh()  # the node does not answer: its last offer stands
    assert [o.memory_free_mib for o in offers.live()] == [8192]
    monkeypatch.setattr(agent_offers, "REFRESH_S", 0.0)

    async def later() -> list[int]:
        offers.live()  # stale: asks again in a worker thread
        for _ in range(100):
            await asyncio.sleep(0.01)
            if offers.live()[0].memory_free_mib == 1024:
                break
        return [o.memory_free_mib for o in offers.live()]

    assert asyncio.run(later()) == [1024]


def test_nodes_that_join_are_asked_and_unusable_or_departed_nodes_are_never_offered() -> None:
    nodes = members(agent("eu-1", [offer("eu-1", "eu")]))
    offers = AgentOffers(nodes)
    nodes["eu-2"] = agent("eu-2", [offer("eu-2", "eu")])  # found later by its Lease
    offers.refresh()
    assert [o.name for o in offers.live()] == ["eu-1", "eu-2"]
    offers.usable = lambda name: name != "eu-1"  # gone, or not registered yet
    assert [o.name for o in offers.live()] == ["eu-2"]
    del nodes["eu-2"]  # its Lease expired: dropped from the fleet
    assert offers.live() == []
