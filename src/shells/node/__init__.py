"""The node boundary: everything the control plane asks of one machine.

A ``Node`` is that machine's backends (one per isolation class) and its instance network. One box
builds it in-process (``local_node``: the btrfs pool and the host network made once and handed to
every backend) and calls it directly; a cluster's control plane holds a ``RemoteNode`` per node
agent (``shells node``), whose backends and network are the same contracts served over an
authenticated RPC (``node.agent`` and ``node.remote``, wire rules in ``node.wire``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..domain.nodes import NodeOffer
from ..runtime.backend import Backend
from ..runtime.network.contract import InstanceNetwork
from ..runtime.volumes import HostVolumes

if TYPE_CHECKING:
    from .carrier import Carrier
    from .routed import Fleet
    from .volume_copies import VolumeCarrier


async def _nothing() -> None:
    return None


@dataclass
class Node:
    name: str
    """The node's name in the record (``shells.node`` of every shell it holds)."""
    backends: list[Backend]
    network: InstanceNetwork
    volumes: HostVolumes | None = None
    """The tenants' volume copies kept on this machine (a node agent's over the RPC)."""
    volume_carrier: VolumeCarrier | None = None
    """Moves its volume copies to and from the object store where its disk is; None: no object
    store reached from here (a one-box control plane moves them with its own)."""
    local: bool = True
    """The node is this process: its network's DNS resolver, ingress and egress proxies are served
    here. A remote node serves them itself, beside its shells."""
    close: Callable[[], Awaitable[None]] = field(default=_nothing)
    """Releases what holds the node (a remote node's connections)."""
    carrier: Carrier | None = None
    """Moves its snapshots and templates to and from the object store where its disk is (a node
    agent's over the RPC); None: the control plane's own backends do it."""
    fleet: Fleet | None = None
    """The named nodes a routed node spreads shells over (a control role's), for moving shells
    between them; None on one machine."""
    offer: Callable[[], NodeOffer | None] | None = None
    """Asks the node what it offers placement now, a blocking round trip (a node agent measures its
    room when asked); None: a node in this process, whose offer the control plane makes itself."""


__all__ = ["Node"]
