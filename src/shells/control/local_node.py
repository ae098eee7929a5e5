"""One box: this host is the instance's one node, in ``settings.region``, offering the classes whose
backends run here. Its room is unbounded: with nowhere else to go, placement on one box checks only
the region and the class, as a one-box install always has (a shape is a limit, not a reservation,
and the quotas bound what a tenant holds)."""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..domain.isolation import Runtime
from ..domain.nodes import NodeOffer
from ..runtime.backend import Backend
from ..settings import Settings

UNBOUNDED_MIB = 2**53


def local_offer(settings: Settings, backends: Iterable[Backend]) -> NodeOffer:
    classes = {b.runtime: b for b in backends}
    microvm = classes.get(Runtime.MICROVM)
    return NodeOffer(
        name=settings.node_name,
        address="",
        region=settings.region,
        zone=settings.zone,
        classes=frozenset(classes),
        accel=microvm.details().get("accel", "") if microvm is not None else "",
        cpus=math.inf,
        cpu_free=math.inf,
        memory_free_mib=UNBOUNDED_MIB,
        disk_free_mib=UNBOUNDED_MIB,
    )
