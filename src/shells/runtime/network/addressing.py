"""Which addresses, names and MACs an instance's shells get. Pure, apart from the host facts passed in.

Each instance owns one IPv4 range (a /16 by default, ``SHELLS_NETWORK_CIDR`` to choose one):

    R[1]                 the gateway, on the link ``sg<instance>``; the DNS resolver listens there
    first half of R      shell uplinks: slot s gets R[s + 2]
    second half of R     private networks, carved into /24s

The default range is picked from 10.128.0.0/9, starting at a place derived from the instance id and
skipping any /16 that overlaps a route, an address or a nameserver of the host (another instance's
range shows up there as its ``unreachable`` route). The choice is written to ``run_dir``, so a
restarted server keeps it while its shells run.

Host-side interface names carry the instance id, so two instances never touch each other's links:
``sh<instance><port:05x>`` where ``port = slot * 16 + index`` (index 0 is the uplink ``eth0``,
1..15 the private networks ``eth1``..``eth15``).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from shells.domain.errors import InvalidRequest, QuotaExceeded

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address

DEFAULT_POOL = IPv4Network("10.128.0.0/9")
DEFAULT_PREFIX = 16
NETWORK_PREFIX = 24
PORTS_PER_SHELL = 16
MAX_SLOTS = 0x100000 // PORTS_PER_SHELL
GATEWAY_MAC = "02:73:68:00:00:01"
"""Every host-side veth carries this MAC: each veth is its own link, so they never meet."""


@dataclass(frozen=True)
class InstanceRange:
    cidr: IPv4Network

    def __post_init__(self) -> None:
        if not 8 <= self.cidr.prefixlen <= 22:
            raise InvalidRequest(
                f"SHELLS_NETWORK_CIDR must be an IPv4 network between /8 and /22, not {self.cidr}.",
                {"field": "SHELLS_NETWORK_CIDR"},
            )

    @property
    def gateway(self) -> IPv4Address:
        return self.cidr[1]

    @property
    def uplinks(self) -> IPv4Network:
        return next(self.cidr.subnets(1))

    @property
    def network_pool(self) -> IPv4Network:
        return list(self.cidr.subnets(1))[1]

    @property
    def slots(self) -> int:
        """How many shells the uplink half holds (network, gateway and broadcast excluded)."""
        return min(self.uplinks.num_addresses - 3, MAX_SLOTS)

    def uplink_address(self, slot: int) -> IPv4Address:
        return self.cidr[slot + 2]

    def free_network(self, used: Iterable[IPv4Network]) -> IPv4Network:
        """The first /24 (or the whole pool, if smaller) of the network half that ``used`` leaves free."""
        taken = list(used)
        prefix = max(NETWORK_PREFIX, self.network_pool.prefixlen)
        for candidate in self.network_pool.subnets(new_prefix=prefix):
            if not any(candidate.overlaps(t) for t in taken):
                return candidate
        raise QuotaExceeded(
            f"All {2 ** (prefix - self.network_pool.prefixlen)} private networks of {self.network_pool} "
            "are in use; delete one, or give the instance a larger SHELLS_NETWORK_CIDR."
        )


def choose_range(instance_id: str, taken: Iterable[IPv4Network]) -> IPv4Network:
    """The first free /16 of the default pool, scanning from a point derived from ``instance_id``."""
    blocked = list(taken)
    candidates = list(DEFAULT_POOL.subnets(new_prefix=DEFAULT_PREFIX))
    start = int(hashlib.sha256(instance_id.encode()).hexdigest(), 16) % len(candidates)
    for candidate in candidates[start:] + candidates[:start]:
        if not any(candidate.overlaps(t) for t in blocked):
            return candidate
    raise InvalidRequest(
        f"Every /16 of {DEFAULT_POOL} overlaps a route or address of this host; set SHELLS_NETWORK_CIDR "
        "to a free IPv4 range.",
        {"field": "SHELLS_NETWORK_CIDR"},
    )


def check_override(cidr: IPv4Network, taken: Iterable[IPv4Network]) -> None:
    """Refuse a configured range that overlaps what the host already routes."""
    for net in taken:
        if cidr.overlaps(net):
            raise InvalidRequest(
                f"SHELLS_NETWORK_CIDR {cidr} overlaps {net}, which this host already uses; "
                "choose a free range.",
                {"field": "SHELLS_NETWORK_CIDR"},
            )


def port_prefix(instance_id: str) -> str:
    """What every host-side port name of one instance starts with."""
    return f"sh{instance_id}"


def gateway_link(instance_id: str) -> str:
    """The instance's (empty) bridge that holds the gateway address."""
    return f"sg{instance_id}"


def port_name(instance_id: str, slot: int, index: int) -> str:
    return f"{port_prefix(instance_id)}{slot * PORTS_PER_SHELL + index:05x}"


def parse_port_name(instance_id: str, name: str) -> tuple[int, int] | None:
    """(slot, index) of one of this instance's port names, else None."""
    prefix = port_prefix(instance_id)
    if not name.startswith(prefix) or len(name) != len(prefix) + 5:
        return None
    try:
        port = int(name[len(prefix) :], 16)
    except ValueError:
        return None
    return divmod(port, PORTS_PER_SHELL)


def shell_mac(slot: int, index: int) -> str:
    port = slot * PORTS_PER_SHELL + index
    return f"02:73:69:{port >> 16 & 0xFF:02x}:{port >> 8 & 0xFF:02x}:{port & 0xFF:02x}"


def lowest_free(used: Iterable[int], start: int, limit: int, what: str) -> int:
    """The smallest integer in [start, limit) not in ``used``; QuotaExceeded when there is none."""
    taken = set(used)
    for candidate in range(start, limit):
        if candidate not in taken:
            return candidate
    raise QuotaExceeded(f"No free {what} is left (all {limit - start} are in use).")
