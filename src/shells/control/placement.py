"""Where a new shell runs: a node in its region that offers its class and has room for its shape.

Pure: it reads the live offers (``cluster.membership`` in a cluster, the host's own offer on one
box) and decides, asking no machine anything. Among the nodes that can take the shell it picks the
one with the most memory free, then the most idle vCPUs, then by name, so creates spread over a
region's nodes; the caller counts what it placed against the chosen offer (``NodeOffer.taking``)
until the node publishes its next one."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from ..domain.errors import NoCapacity, UnknownRegion
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
    return min(fitting, key=lambda o: (-o.memory_free_mib, -o.cpu_free, o.name))
