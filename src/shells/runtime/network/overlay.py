"""Private networks across nodes: one VXLAN link per network between the nodes that carry its members.

The control plane tells each node its *plan*: for every private network with members here, the
other nodes (by underlay address) that carry members too, and those members (host name → address).
The node then keeps, per such network, a VXLAN link ``v<instance><vni>`` whose VNI is the low 24
bits of the network's address (unique: an instance's networks never overlap and all lie in one
range of at least a /8's size), with:

* a static FDB entry per peer node (its link's MAC, derived from its underlay address, → that
  address); nothing is learnt from received frames and nothing is flooded (no multicast group);
* per remote member a /32 route through the link (metric ``OVERLAY_METRIC``, so a local port's own
  route wins while a stale entry waits for the next plan) and a permanent neighbour entry naming its
  node's MAC; the link answers no ARP.

The dataplane stays routed: a packet from a local member to a remote one crosses the host's stack
and the instance's nft table like any other (``private_pairs`` admits it), leaves through the
link, and arrives on the peer's link, where the table admits it only if its source is a member the
plan puts behind that link (``overlay_sources``: the VNI and the inner source must agree) and the
pair is of one network. Underlay packets to the VXLAN port are taken only from the plan's peer
nodes (``overlay_peers``), and no shell may send anything to a peer node's address, so a shell
can neither inject frames into an overlay nor forge another network's VNI from its own node
(its packets would leave masqueraded as its node's). The rules are in :mod:`.ruleset`.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from shells.domain.network import PrivateNetwork

from .libnftables import Nftables
from .rtnl import Netlink, write_sysctl
from .ruleset import Ruleset

IPv4Address = ipaddress.IPv4Address
IPv4Network = ipaddress.IPv4Network

OVERLAY_METRIC = 100

Members = dict[str, IPv4Address]
"""Host name → address of a network's members on one node (the shape of ``peers``)."""
Plan = dict[str, dict[IPv4Address, Members]]
"""Network id → peer node's underlay address → that node's members of the network."""


def vni_of(cidr: IPv4Network) -> int:
    return int(cidr.network_address) & 0xFFFFFF


def overlay_prefix(instance: str) -> str:
    """What the name of every overlay link of one instance starts with."""
    return f"v{instance}"


def link_name(instance: str, vni: int) -> str:
    return f"{overlay_prefix(instance)}{vni:06x}"


def node_mac(underlay: IPv4Address) -> str:
    """The MAC of a node's overlay links: locally administered, the underlay address in its tail."""
    return "02:76:" + ":".join(f"{b:02x}" for b in underlay.packed)


@dataclass
class Overlays:
    """The overlay links of one instance on this node. ``HostNetwork`` calls it under its lock."""

    instance: str
    local: IPv4Address | None = None
    plan: Plan = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    """Network id → the name of its link here."""

    def remote(self, net_id: str) -> Members:
        """The members of ``net_id`` on other nodes, as the last plan has them."""
        return {name: a for members in self.plan.get(net_id, {}).values() for name, a in members.items()}

    def apply(
        self,
        local: IPv4Address,
        plan: Plan,
        networks: Mapping[str, PrivateNetwork],
        rules: Ruleset,
        nft: Nftables,
    ) -> None:
        """Make the links, routes, neighbours, FDB entries and nft sets match ``plan``."""
        wanted: Plan = {}
        for net_id, peers in plan.items():
            kept = {p: dict(m) for p, m in peers.items() if m and p != local}
            if kept and net_id in networks:
                wanted[net_id] = kept
        if local == self.local and wanted == self.plan:
            return  # the plan comes every second; most seconds nothing changed
        with Netlink() as host:
            if local != self.local:  # the node's own address changed: start over
                self.remove_all(host)
                self.plan, self.local = {}, local
            for net_id in set(self.plan) - set(wanted):
                index = host.index(self.links.pop(net_id))
                if index is not None:
                    host.delete_link(index)
                del self.plan[net_id]
            for net_id, peers in wanted.items():
                self._converge(host, local, rules.overlay_port, networks[net_id], peers)
        sources = [(self.links[n], a) for n in wanted for a in _addresses(wanted[n])]
        underlays = sorted({p for peers in wanted.values() for p in peers})
        nft.run(rules.overlay_sets(sources, underlays, [local] if wanted else []))
        self.plan = wanted

    def _converge(
        self,
        host: Netlink,
        local: IPv4Address,
        port: int,
        net: PrivateNetwork,
        peers: dict[IPv4Address, Members],
    ) -> None:
        name = link_name(self.instance, vni_of(net.cidr))
        index = host.index(name)
        before = self.plan.get(net.id, {})
        if index is None:
            host.create_vxlan(name, vni_of(net.cidr), local, port, node_mac(local))
            write_sysctl(f"net.ipv6.conf.{name}.disable_ipv6", "1")
            index = host.index(name)
            if index is None:
                raise OSError(errno.ENODEV, f"link {name} vanished while it was being configured")
            host.set_up(index)
            before = {}
        for peer in set(before) - set(peers):
            host.delete_fdb(index, node_mac(peer), peer)
        for peer in set(peers) - set(before):
            host.set_fdb(index, node_mac(peer), peer)
        was = {a: p for p, members in before.items() for a in members.values()}
        now = {a: p for p, members in peers.items() for a in members.values()}
        for address, peer in was.items():
            if now.get(address) != peer:
                host.delete_route(IPv4Network(address), oif=index, metric=OVERLAY_METRIC)
                host.delete_neighbour(index, address)
        for address, peer in now.items():
            if was.get(address) != peer:
                host.set_neighbour(index, address, node_mac(peer))
                with contextlib.suppress(FileExistsError):
                    host.add_route(IPv4Network(address), oif=index, metric=OVERLAY_METRIC)
        self.plan[net.id] = peers
        self.links[net.id] = name

    def remove_all(self, host: Netlink) -> None:
        """Delete every overlay link of the instance (their routes and entries go with them)."""
        prefix = overlay_prefix(self.instance)
        for link in host.links():
            if link.name.startswith(prefix) and len(link.name) == len(prefix) + 6:
                host.delete_link(link.index)
        self.plan, self.links, self.local = {}, {}, None


def _addresses(peers: dict[IPv4Address, Members]) -> list[IPv4Address]:
    return [a for members in peers.values() for a in members.values()]
