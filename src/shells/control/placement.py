"""Where a new shell runs: a node in its region that offers its class and has room for its shape.

Pure: it reads the live offers (``cluster.membership`` in a cluster, the host's own offer on one
box) and decides, asking no machine anything. Among the nodes that can take the shell it picks the
one with the most memory free, then the most idle vCPUs, then by name, so creates spread over a
region's nodes; the caller counts what it placed against the chosen offer (``NodeOffer.taking``)
until the node publishes its next one.

A shell made from a snapshot (``place_from_snapshot``) can start only where the snapshot is: on a
node that holds it on its disk, or on one that fetches it from the object store (a durable
snapshot). Such nodes come first, in the same order."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..domain.errors import NoCapacity, SnapshotNotPlaceable, SnapshotUnreachable, UnknownRegion
from ..domain.isolation import Runtime
from ..domain.nodes import NodeOffer
from ..domain.shapes import Shape


def regions(offers: Iterable[NodeOffer]) -> list[str]:
    return sorted({o.region for o in offers})


def region_offers(offers: Iterable[NodeOffer]) -> dict[str, dict[str, Any]]:
    """Each region with what its live nodes offer (``GET /v1/info``): how many nodes, their zones,
    the isolation classes and how microvms run there (no capacities: anyone may read the info)."""
    out: dict[str, dict[str, Any]] = {}
    for region in regions(offers := list(offers)):
        here = [o for o in offers if o.region == region]
        out[region] = {
            "nodes": len(here),
            "zones": sorted({o.zone for o in here if o.zone}),
            "runtimes": sorted({c.value for o in here for c in o.classes}),
            "accel": sorted({o.accel for o in here if o.accel}),
        }
    return out


def place(
    offers: Sequence[NodeOffer],
    region: str,
    runtime: Runtime,
    shape: Shape,
    cordoned: Collection[str] = frozenset(),
) -> NodeOffer:
    """The node for a ``runtime`` shell of ``shape`` in ``region``, never a ``cordoned`` one;
    ``UnknownRegion`` when no node is in that region, ``NoCapacity`` when none there offers the class
    or has room, or every one is cordoned."""
    return min(_fitting(offers, region, runtime, shape, cordoned), key=_spread)


@dataclass(frozen=True)
class SnapshotSource:
    """Where the snapshot a new shell starts from can be had: the live nodes that hold it on their
    disk, and whether any other node can fetch it from the object store (it is durable)."""

    snapshot: str
    held_on: frozenset[str]
    durable: bool


def place_from_snapshot(
    offers: Sequence[NodeOffer],
    region: str,
    runtime: Runtime,
    shape: Shape,
    cordoned: Collection[str],
    source: SnapshotSource,
) -> list[NodeOffer]:
    """The nodes a shell made from ``source`` may go to, best first: those ``place`` would take
    that hold the snapshot, then, when it is durable, the others (the caller fetches it there, and
    tries the next one if a node refuses it: a microvm node whose machine differs). The errors of
    ``place`` when the region cannot take the shell at all; ``SnapshotUnreachable`` (503) when no live
    node holds a snapshot that is not durable, ``SnapshotNotPlaceable`` (409) when only nodes that
    cannot take the shell do."""
    ranked = sorted(_fitting(offers, region, runtime, shape, cordoned), key=_spread)
    holders = [o for o in ranked if o.name in source.held_on]
    if source.durable:
        return holders + [o for o in ranked if o.name not in source.held_on]
    if holders:
        return holders
    details = {"snapshot": source.snapshot, "region": region, "nodes": sorted(source.held_on)}
    if not source.held_on:
        raise SnapshotUnreachable(
            f"Snapshot '{source.snapshot}' is on no node that answers now and not yet in the object "
            "store; retry once its node is back, or once the snapshot shows 'durable': true.",
            details,
        )
    where = {o.name: o.region for o in offers}
    held = ", ".join(f"{n} (region {where.get(n, '?')})" for n in sorted(source.held_on))
    raise SnapshotNotPlaceable(
        f"Snapshot '{source.snapshot}' is only on node {held}, which cannot take a {runtime} shell of "
        f"shape {shape.name} in region '{region}' now (another region, cordoned or full), and it is not "
        "yet in the object store; create it in that node's region, or again once the node has room "
        "or the snapshot shows 'durable': true.",
        details,
    )


def _spread(offer: NodeOffer) -> tuple[float, float, str]:
    """Most memory free first, then most idle vCPUs, then by name."""
    return (-offer.memory_free_mib, -offer.cpu_free, offer.name)


def _fitting(
    offers: Sequence[NodeOffer], region: str, runtime: Runtime, shape: Shape, cordoned: Collection[str]
) -> list[NodeOffer]:
    """The open nodes of ``region`` that offer ``runtime`` and have room for ``shape``, or the
    typed error saying why there is none."""
    here = [o for o in offers if o.region == region]
    if not here:
        known = ", ".join(regions(offers)) or "none is up now"
        raise UnknownRegion(
            f"Region '{region}' is not one of this instance's regions ({known}).",
            {"field": "region", "region": region},
        )
    details = {"region": region, "runtime": runtime.value, "shape": shape.name}
    open_here = [o for o in here if o.name not in cordoned]
    if not open_here:
        raise NoCapacity(
            f"Every node in region '{region}' is cordoned (being drained); uncordon one "
            "(shells admin node uncordon NODE) or choose another region.",
            details,
        )
    here = open_here
    offering = [o for o in here if runtime in o.classes]
    if not offering:
        raise NoCapacity(
            f"No node in region '{region}' offers {runtime} shells; choose another class or region.",
            details,
        )
    fitting = [o for o in offering if o.has_room(shape)]
    if not fitting:
        raise NoCapacity(
            f"No {runtime} node in region '{region}' has room for shape {shape.name} "
            f"({shape.vcpus:g} vCPU, {shape.memory_mib} MiB memory, {shape.disk_mib} MiB disk) now; "
            "try a smaller shape, another region, or again once shells end.",
            details,
        )
    return fitting
