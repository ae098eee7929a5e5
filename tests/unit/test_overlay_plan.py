"""The control plane's side of private networks across nodes (``RoutedNetwork.link_overlays`` and
``elsewhere``) and the overlay's names and nft sets, without a kernel."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import cast

from shells.domain.errors import Unavailable
from shells.domain.network import PrivateNetwork
from shells.node.routed import RoutedNetwork, Routes
from shells.runtime.network.contract import InstanceNetwork
from shells.runtime.network.overlay import Members, Plan, link_name, node_mac, vni_of
from shells.runtime.network.ruleset import Ruleset

A, B, C = IPv4Address("172.30.1.2"), IPv4Address("172.30.2.2"), IPv4Address("172.30.3.2")
BLUE = PrivateNetwork("net-blue", "blue", IPv4Network("10.99.128.0/24"))


class Node:
    """A node's overlay calls, recording the plans it is sent."""

    def __init__(self, members: dict[str, Members]) -> None:
        self.members = members
        self.plans: list[tuple[IPv4Address, Plan]] = []
        self.down = False

    def overlay_members(self) -> dict[str, Members]:
        if self.down:
            raise Unavailable("The node does not answer.")
        return self.members

    def set_overlay(self, local: IPv4Address, plan: Plan) -> None:
        if self.down:
            raise Unavailable("The node does not answer.")
        self.plans.append((local, plan))


def routed(nodes: dict[str, tuple[IPv4Address, Node]]) -> RoutedNetwork:
    networks = {name: cast(InstanceNetwork, node) for name, (_, node) in nodes.items()}
    return RoutedNetwork(networks, Routes(lambda _: None, lambda _: None), nodes)


def test_each_node_is_sent_the_peers_of_its_networks_only() -> None:
    x, y, z = IPv4Address("10.99.128.2"), IPv4Address("10.99.128.3"), IPv4Address("10.99.129.2")
    a = Node({"net-blue": {"x": x}})
    b = Node({"net-blue": {"y": y}, "net-red": {"z": z}})
    c = Node({})
    network = routed({"a": (A, a), "b": (B, b), "c": (C, c)})
    network.link_overlays()
    assert a.plans == [(A, {"net-blue": {B: {"y": y}}})]
    assert b.plans == [(B, {"net-blue": {A: {"x": x}}})]  # red has no member elsewhere: no link
    assert c.plans == [(C, {})]
    # y leaves: a's link to b goes with the next plan
    b.members = {"net-red": {"z": z}}
    network.link_overlays()
    assert a.plans[-1] == (A, {}) and b.plans[-1] == (B, {})


def test_a_node_that_does_not_answer_keeps_its_members_known() -> None:
    x, y = IPv4Address("10.99.128.2"), IPv4Address("10.99.128.3")
    a, b = Node({"net-blue": {"x": x}}), Node({"net-blue": {"y": y}})
    network = routed({"a": (A, a), "b": (B, b)})
    network.link_overlays()
    b.down = True
    network.link_overlays()  # no exception; a still routes to y as b last reported it
    assert a.plans[-1] == (A, {"net-blue": {B: {"y": y}}})


def test_a_node_declared_gone_leaves_every_plan_and_comes_back_with_what_it_holds_then() -> None:
    x, y = IPv4Address("10.99.128.2"), IPv4Address("10.99.128.3")
    a, b = Node({"net-blue": {"x": x}}), Node({"net-blue": {"y": y}})
    network = routed({"a": (A, a), "b": (B, b)})
    network.link_overlays()
    assert a.plans[-1] == (A, {"net-blue": {B: {"y": y}}})
    gone: set[str] = set()
    network.linked = lambda name: name not in gone
    b.down = True
    gone.add("b")  # the registry declared b gone: y is lost, a stops routing to it
    network.link_overlays()
    assert a.plans[-1] == (A, {})
    assert network.elsewhere(BLUE, "a").taken == frozenset()  # y's address is free again
    b.down, b.members = False, {}  # back, fenced: its shells were destroyed
    network.link_overlays()
    assert a.plans[-1] == (A, {}) and len(b.plans) == 1  # not linked until registered again
    gone.clear()
    b.members = {"net-blue": {"w": y}}
    network.link_overlays()
    assert a.plans[-1] == (A, {"net-blue": {B: {"w": y}}})
    assert b.plans[-1] == (B, {"net-blue": {A: {"x": x}}})


def test_an_address_held_on_a_node_that_does_not_answer_stays_taken() -> None:
    x = IPv4Address("10.99.128.2")
    a = Node({"net-blue": {"x": x}})
    network = routed({"a": (A, a), "b": (B, Node({}))})
    network.link_overlays()
    a.down = True
    assert network.elsewhere(BLUE, "b").taken == frozenset({x})  # as a last reported, no error


def test_an_address_held_on_another_node_is_taken() -> None:
    x = IPv4Address("10.99.128.2")
    network = routed({"a": (A, Node({"net-blue": {"x": x}})), "b": (B, Node({}))})
    assert network.elsewhere(BLUE, "b").taken == frozenset({x})
    assert network.elsewhere(BLUE, "a").taken == frozenset()
    assert network.elsewhere(BLUE, "b") == BLUE  # not part of the network's identity


def test_names_and_sets_of_the_overlay() -> None:
    assert vni_of(BLUE.cidr) == (99 << 16) | (128 << 8)
    assert link_name("0123abcd", vni_of(BLUE.cidr)) == "v0123abcd638000"
    assert len(link_name("0123abcd", 0xFFFFFF)) <= 15  # IFNAMSIZ - 1
    assert node_mac(A) == "02:76:ac:1e:01:02"
    rules = Ruleset("0123abcd", IPv4Address("10.99.0.1"), IPv4Network("10.99.0.0/16"))
    batch = rules.overlay_sets([("v0123abcd638000", IPv4Address("10.99.128.3"))], [B], [A])
    assert 'add element inet shells_0123abcd overlay_sources { "v0123abcd638000" . 10.99.128.3 }' in batch
    assert "add element inet shells_0123abcd overlay_peers { 172.30.2.2 }" in batch
    emptied = rules.overlay_sets([], [], [])
    assert "add element" not in emptied and emptied.count("flush set") == 3
