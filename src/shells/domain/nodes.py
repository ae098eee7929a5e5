"""A node: one machine that runs shells, as the control plane sees it through what it offers.

A node agent publishes its ``NodeOffer`` on its own Kubernetes Lease (``cluster.membership``); on one
box the offer is the host's own. Placement (``control.placement``) reads only these records, so it
never asks a machine anything while it decides."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from .isolation import Runtime
from .shapes import Shape


@dataclass(frozen=True)
class NodeOffer:
    """What one node can take now."""

    name: str
    """The node's name (its Kubernetes Node's name in a cluster): the holder of its Lease."""
    address: str
    """Where the control plane reaches the node agent (``host:port``); empty on one box."""
    region: str
    zone: str
    classes: frozenset[Runtime]
    """The isolation classes this node runs."""
    accel: str
    """How its microvms run: ``kvm``, ``tcg``, or empty when it offers no microvm class."""
    cpus: float
    """vCPUs of the machine: a shape asking for more can never run there (CPU is shared, not reserved)."""
    cpu_free: float
    """vCPUs idle now (``cpus`` minus the load), for spreading."""
    memory_free_mib: int
    disk_free_mib: int

    def has_room(self, shape: Shape) -> bool:
        """Whether a shell of ``shape`` fits: its vCPUs on the machine, its memory and disk free now."""
        return (
            shape.vcpus <= self.cpus
            and shape.memory_mib <= self.memory_free_mib
            and shape.disk_mib <= self.disk_free_mib
        )

    def taking(self, shape: Shape) -> NodeOffer:
        """The offer after a shell of ``shape`` was placed here (until the node publishes again)."""
        return replace(
            self,
            cpu_free=max(0.0, self.cpu_free - shape.vcpus),
            memory_free_mib=self.memory_free_mib - shape.memory_mib,
            disk_free_mib=self.disk_free_mib - shape.disk_mib,
        )


READY = "ready"
GONE = "gone"


@dataclass(frozen=True)
class NodeRecord:
    """A node as the record knows it: its registration and whether the control plane counts it.

    ``generation`` grows by one each time the node is (re)registered after being gone (or seen for
    the first time). The control plane tells the node its generation and sends it with every call;
    the node refuses calls of an older one (``node.agent``), so a node that comes back after being
    declared gone is reconciled under a new generation and nothing acts on it under the old."""

    name: str
    generation: int
    state: str
    """``ready`` (placed on, answering) or ``gone`` (its lease expired; its shells are lost)."""
    reason: str
    changed_at: datetime

    @property
    def ready(self) -> bool:
        return self.state == READY
