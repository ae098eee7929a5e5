"""A shell's ports: veth pairs from the host into its netns, routed (no bridge), configured by netlink.

Each port is a point-to-point link. The shell's end (``eth0`` for the uplink, ``ethN`` for private
network N) carries a /32 address, a permanent neighbour entry for the gateway (so the shell never
has to ARP for it) and ``onlink`` routes via the gateway: the default route on ``eth0``, the
network's CIDR and the gateway itself on ``ethN``. The host's end carries no address and one /32
route to the shell's address. So everything a shell sends crosses the host's IP stack, where one
nftables table decides, and no shell shares a link (or an ARP cache) with another: isolation needs
no bridge port flags, and nothing depends on ``br_netfilter``.

IPv6 is not routed: it is disabled on the shell's ports (``net.ipv6.conf.default.disable_ipv6`` in its
netns; ``lo`` keeps ``::1``). The host's ends keep IPv6 on but get no address and accept no router
advertisements, so IPv6 a guest kernel sends anyway (a microVM's) is seen, counted and dropped.
The netns is owned by the host's user namespace, so root in the shell can change none of this.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .addressing import GATEWAY_MAC
from .rtnl import Netlink, open_in_netns, write_sysctl

IPv4Address = ipaddress.IPv4Address
IPv4Network = ipaddress.IPv4Network

NETNS_SYSCTLS = {
    "net.ipv6.conf.default.disable_ipv6": "1",
    # ICMP echo sockets for every uid (unprivileged ping, as Docker allows): ping works in a shell
    # without CAP_NET_RAW, and the host's rules judge its packets like any other.
    "net.ipv4.ping_group_range": "0 2147483647",
}


@dataclass(frozen=True)
class VethLink:
    name: str  # host side
    inside: str  # shell side
    mac: str  # shell side
    address: IPv4Address
    network: IPv4Network | None  # None for the uplink (default route)
    metric: int


class ShellLinks:
    """Netlink sockets for one change to one shell: the host's and one inside its netns."""

    def __init__(self, host: Netlink, inside: Netlink, netns_fd: int, gateway: IPv4Address) -> None:
        self.host, self.inside, self.netns_fd, self.gateway = host, inside, netns_fd, gateway

    def set_loopback(self, up: bool) -> None:
        """``lo`` up (the kernel adds 127.0.0.1 and ::1), or down without 127.0.0.1: a loopback
        that goes down keeps its IPv4 address and local routes, so connect() would hang instead
        of failing at once."""
        index = self.inside.index("lo")
        if index is None:
            return
        self.inside.set_up(index, up)
        if not up:
            self.inside.delete_address(index, IPv4Address("127.0.0.1"), 8)

    def open(self, port: VethLink, alias: str) -> None:
        """Create and configure one port; a failure leaves it for :meth:`close` to remove."""
        try:
            self.host.create_veth(port.name, GATEWAY_MAC, alias, port.inside, port.mac, self.netns_fd)
        except FileExistsError:  # a stale port: of this slot's last holder (a crash), or of this
            # netns's last attachment, whose deletion is still queued (see .reaper)
            self.close(port.name)
            stale = self.inside.index(port.inside)
            if stale is not None:
                self.inside.delete_link(stale)
            self.host.create_veth(port.name, GATEWAY_MAC, alias, port.inside, port.mac, self.netns_fd)
        host_index = _required(self.host.index(port.name), port.name)
        for key, value in (("addr_gen_mode", "1"), ("accept_ra", "0")):
            write_sysctl(f"net.ipv6.conf.{port.name}.{key}", value)
        self.host.set_up(host_index)
        self.host.add_route(IPv4Network(port.address), oif=host_index, source=self.gateway)
        inside = _required(self.inside.index(port.inside), port.inside)
        self.inside.add_address(inside, port.address)
        self.inside.set_up(inside)
        self.inside.add_permanent_neighbour(inside, self.gateway, GATEWAY_MAC)
        if port.network is None:
            self.inside.add_route(IPv4Network("0.0.0.0/0"), oif=inside, gateway=self.gateway)
        else:
            self.inside.add_route(port.network, oif=inside, gateway=self.gateway)
            self.inside.add_route(IPv4Network(self.gateway), oif=inside, metric=port.metric)

    def close(self, name: str) -> None:
        """Delete a port by its host-side name (its peer, addresses and routes go with it)."""
        index = self.host.index(name)
        if index is not None:
            self.host.delete_link(index)


@contextmanager
def shell_links(host: Netlink, netns_path: str, gateway: IPv4Address) -> Iterator[ShellLinks]:
    """Sockets for changing the shell whose netns is bound at ``netns_path``."""
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with open_in_netns(netns_path, NETNS_SYSCTLS) as inside:
            yield ShellLinks(host, inside, fd, gateway)
    finally:
        os.close(fd)


def ensure_gateway(host: Netlink, name: str, gateway: IPv4Address, cidr: IPv4Network) -> None:
    """The instance's gateway link holding the gateway address, and an ``unreachable`` route for
    the whole range (so no address of it that is not a running shell's ever leaves by the default
    route). Idempotent. The link is an empty bridge: any link type works for holding a local
    address, and unlike ``dummy`` every kernel that runs containers has bridges."""
    if host.index(name) is None:
        host.create_link(name, "bridge")
    index = _required(host.index(name), name)
    write_sysctl(f"net.ipv6.conf.{name}.disable_ipv6", "1")
    _tolerate_exists(lambda: host.add_address(index, gateway))
    host.set_up(index)
    _tolerate_exists(lambda: host.add_route(cidr, unreachable=True))


def remove_gateway(host: Netlink, name: str, cidr: IPv4Network) -> None:
    index = host.index(name)
    if index is not None:
        host.delete_link(index)
    host.delete_route(cidr, unreachable=True)


def _tolerate_exists(step: Callable[[], None]) -> None:
    try:
        step()
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise


def _required(index: int | None, name: str) -> int:
    if index is None:
        raise OSError(errno.ENODEV, f"link {name} vanished while it was being configured")
    return index
