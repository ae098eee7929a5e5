"""Which nodes are alive and what each offers, from one Kubernetes Lease per node.

A node agent holds the Lease ``shells-node-<name>`` with its name as the holder and publishes its
``NodeOffer`` as annotations on it, written again at every renewal (``NodePublisher``). The control
plane lists those Leases (``Membership``): a node is alive while its Lease keeps changing. As in
``lease.py``, expiry is judged on the reader's own monotonic clock (a version unchanged for the
lease's duration since the reader first saw it is expired), so no two machines' clocks are
compared; the one exception is a Lease the reader sees for the first time whose renewal is older than
its duration plus ``max_skew_s`` by the wall clock, which is gone at once instead of a lease later.
A Lease whose holder was cleared (a node agent that stopped cleanly) is gone at once."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ..domain.isolation import Runtime
from ..domain.nodes import NodeOffer
from .kube import Kube, KubeError, NotFound
from .lease import LeaseHolder, LeaseTiming

log = logging.getLogger(__name__)

__all__ = ["Membership", "NodeOffer", "NodePublisher", "host_capacity", "node_topology", "offer_annotations"]

PREFIX = "shells.dev/"
ROLE_LABEL = PREFIX + "role"
NODE_ROLE = "node"
NODE_SELECTOR = f"{ROLE_LABEL}={NODE_ROLE}"
REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"


def lease_name(node: str) -> str:
    return f"shells-node-{node}"


def offer_annotations(offer: NodeOffer) -> dict[str, str]:
    """The offer as Lease annotations (strings, as Kubernetes wants them)."""
    return {
        PREFIX + "address": offer.address,
        PREFIX + "region": offer.region,
        PREFIX + "zone": offer.zone,
        PREFIX + "classes": ",".join(sorted(c.value for c in offer.classes)),
        PREFIX + "accel": offer.accel,
        PREFIX + "cpus": f"{offer.cpus:g}",
        PREFIX + "cpu-free": f"{offer.cpu_free:.2f}",
        PREFIX + "memory-free-mib": str(offer.memory_free_mib),
        PREFIX + "disk-free-mib": str(offer.disk_free_mib),
    }


def parse_offer(lease: dict[str, Any]) -> NodeOffer | None:
    """The offer a node's Lease publishes, or None for one that does not hold a complete offer
    (a node of another version, or a Lease edited by hand): such a node is not placed on."""
    holder = (lease.get("spec") or {}).get("holderIdentity")
    notes = (lease.get("metadata") or {}).get("annotations") or {}
    if not holder:
        return None
    try:
        known = {r.value for r in Runtime}
        classes = {c for c in notes[PREFIX + "classes"].split(",") if c in known}
        return NodeOffer(
            name=str(holder),
            address=notes[PREFIX + "address"],
            region=notes[PREFIX + "region"],
            zone=notes.get(PREFIX + "zone", ""),
            classes=frozenset(Runtime(c) for c in classes),
            accel=notes.get(PREFIX + "accel", ""),
            cpus=float(notes[PREFIX + "cpus"]),
            cpu_free=float(notes[PREFIX + "cpu-free"]),
            memory_free_mib=int(notes[PREFIX + "memory-free-mib"]),
            disk_free_mib=int(notes[PREFIX + "disk-free-mib"]),
        )
    except (KeyError, ValueError) as exc:
        log.warning("node lease %s publishes no usable offer: %r", lease["metadata"].get("name"), exc)
        return None


def host_capacity(data_dir: Path) -> tuple[float, float, int, int]:
    """This machine's vCPUs, idle vCPUs (by the 1-minute load), free memory (MemAvailable) and the
    free disk under ``data_dir``, in MiB: what a node publishes when nothing more exact is known."""
    cpus = float(len(os.sched_getaffinity(0)))
    cpu_free = max(0.0, cpus - os.getloadavg()[0])
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
        if line.startswith("MemAvailable:"):
            memory_kib = int(line.split()[1])
    disk = shutil.disk_usage(data_dir if data_dir.exists() else data_dir.parent)
    return cpus, cpu_free, memory_kib // 1024, disk.free // (1024 * 1024)


def measured_offer(
    name: str, address: str, region: str, zone: str, classes: Iterable[Runtime], accel: str, data_dir: Path
) -> NodeOffer:
    """This machine's offer with its room measured now (``host_capacity``)."""
    cpus, cpu_free, memory_free, disk_free = host_capacity(data_dir)
    return NodeOffer(
        name, address, region, zone, frozenset(classes), accel, cpus, cpu_free, memory_free, disk_free
    )


async def node_topology(kube: Kube, node: str, region: str, zone: str) -> tuple[str, str]:
    """The region and zone from the Kubernetes Node ``node``'s standard topology labels, each
    falling back to the given one (the settings) when the label is not set or there is no such Node."""
    try:
        labels = await kube.node_labels(node)
    except NotFound:
        return region, zone
    return labels.get(REGION_LABEL) or region, labels.get(ZONE_LABEL) or zone


class NodePublisher:
    """Holds this node's Lease and publishes ``offer()`` on it at every renewal."""

    def __init__(
        self,
        kube: Kube,
        offer: Callable[[], NodeOffer],
        timing: LeaseTiming | None = None,
        *,
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.close = close
        """Releases what the publisher alone uses (its API client), after the stop."""
        name = offer().name
        self.holder = LeaseHolder(
            kube,
            lease_name(name),
            name,
            timing or LeaseTiming(),
            labels={ROLE_LABEL: NODE_ROLE, "app.kubernetes.io/part-of": "shells"},
            annotations=lambda: offer_annotations(offer()),
        )

    def start(self) -> None:
        self.holder.start()

    async def stop(self, release: bool = True) -> None:
        """Stop renewing and, if ``release``, clear the holder: readers see the node gone at their
        next look. Without it the Lease runs out on its own, so an agent restarted within one
        lease takes it back and its node is never gone."""
        await self.holder.stop(release=release)
        if self.close is not None:
            await self.close()


class Membership:
    """The live nodes, judged as the module says from what the last ``refresh`` read. ``live()``
    judges at the moment it is called, so a node whose Lease stopped changing drops out on time
    even while the API server does not answer the refreshes."""

    def __init__(
        self,
        kube: Kube,
        *,
        max_skew_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube = kube
        self.max_skew_s = max_skew_s
        self.clock = clock
        self.wall = wall
        self._seen: dict[str, _Seen] = {}

    def live(self) -> list[NodeOffer]:
        """The nodes alive now, by name."""
        now = self.clock()
        return sorted(
            (s.offer for s in self._seen.values() if s.offer is not None and now < s.expires),
            key=lambda o: o.name,
        )

    async def refresh(self) -> list[NodeOffer]:
        """List the node Leases once and judge each (raises ``KubeError`` or ``httpx.HTTPError``
        when the API does not answer; what was read before keeps expiring on its own)."""
        leases = await self.kube.list_leases(NODE_SELECTOR)
        now = self.clock()
        seen: dict[str, _Seen] = {}
        for lease in leases:
            meta, spec = lease["metadata"], lease.get("spec") or {}
            version = str(meta["resourceVersion"])
            before = self._seen.get(meta["name"])
            since = before.since if before is not None and before.version == version else now
            expires = since + float(spec.get("leaseDurationSeconds") or 0)
            if before is None and not self._recent(spec):
                expires = now  # first seen, and renewed long ago by any clock: gone already
            seen[meta["name"]] = _Seen(version, since, expires, parse_offer(lease))
        self._seen = seen
        return self.live()

    def _recent(self, spec: dict[str, Any]) -> bool:
        try:
            renewed = datetime.fromisoformat(str(spec["renewTime"]))
        except (KeyError, ValueError):
            return True
        age = (self.wall() - renewed).total_seconds()
        return age < float(spec.get("leaseDurationSeconds") or 0) + self.max_skew_s

    async def run(self, every_s: float = 2.0) -> None:
        """Refresh every ``every_s`` until cancelled."""
        while True:
            try:
                await self.refresh()
            except (KubeError, httpx.HTTPError) as exc:
                log.warning("membership: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(every_s)


@dataclass(frozen=True)
class _Seen:
    version: str
    since: float
    """Our time when this version was first seen."""
    expires: float
    offer: NodeOffer | None
