"""What the control layer asks of an instance's network: the part of ``HostNetwork`` the use cases
and the DNS resolver's policy call. ``HostNetwork`` is the real one; a test node without root
supplies its own (``tests/support/fake_node.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from shells.domain.network import AllowRule, BlockedAttempt, NetworkAccess, PrivateNetwork

from .addressing import InstanceRange

if TYPE_CHECKING:
    from .dataplane import ShellAddresses
    from .overlay import Members, Plan


class InstanceNetwork(Protocol):
    @property
    def range(self) -> InstanceRange:
        """The instance's IPv4 range (private networks are carved out of it)."""

    def addresses(self, host_id: str) -> ShellAddresses:
        """Where a running shell is on the network (RuntimeFailure for one the network does not hold)."""

    def gateway_addresses(self) -> list[IPv4Address]:
        """Where the instance's DNS resolver listens."""

    def create_network(self, net: PrivateNetwork) -> None: ...

    def delete_network(self, net_id: str) -> None: ...

    def join(self, host_id: str, net: PrivateNetwork, hostname: str) -> str:
        """Put a running shell on ``net``; its address there."""

    def leave(self, host_id: str, net_id: str) -> None: ...

    def peers(self, net_id: str) -> dict[str, IPv4Address]: ...

    def memberships(self, host_id: str) -> list[str]: ...

    def client_of(self, ip: IPv4Address | IPv6Address) -> str | None: ...

    def policy_of(self, host_id: str) -> NetworkAccess | None: ...

    def netns_of(self, host_id: str) -> str | None:
        """The name of the shell's network namespace (the egress proxy dials from inside it)."""

    def drain_blocked(self) -> list[tuple[str, BlockedAttempt]]:
        """Refused attempts since the previous drain."""

    def allow_resolved(
        self, host_id: str, rule: AllowRule, addresses: Sequence[IPv4Address | IPv6Address], ttl_s: int
    ) -> None: ...


class NodeOverlay(Protocol):
    """A node's side of the private networks that span nodes (:mod:`.overlay`)."""

    def overlay_members(self) -> dict[str, Members]:
        """Per private network, the members on this node whose ports are open."""

    def set_overlay(self, local: IPv4Address, plan: Plan) -> None:
        """Link this node's members with the peers ``plan`` names, from underlay address ``local``."""


@runtime_checkable
class SpansNodes(Protocol):
    """An instance network over several nodes, whose private networks need linking between them."""

    def link_overlays(self) -> None:
        """Send each node the plan of its private networks' peers on other nodes."""
