"""One box: this host is the instance's one node, in ``settings.region``, offering the classes
whose backends run here, with the room the host has now (``cluster.membership.host_capacity``)."""

from __future__ import annotations

import socket
from collections.abc import Iterable

from ..cluster.membership import host_capacity
from ..domain.isolation import Runtime
from ..domain.nodes import NodeOffer
from ..runtime.backend import Backend
from ..settings import Settings


def local_offer(settings: Settings, backends: Iterable[Backend]) -> NodeOffer:
    classes = {b.runtime: b for b in backends}
    microvm = classes.get(Runtime.MICROVM)
    cpus, cpu_free, memory_free, disk_free = host_capacity(settings.data_dir)
    return NodeOffer(
        name=socket.gethostname(),
        address="",
        region=settings.region,
        zone=settings.zone,
        classes=frozenset(classes),
        accel=microvm.details().get("accel", "") if microvm is not None else "",
        cpus=cpus,
        cpu_free=cpu_free,
        memory_free_mib=memory_free,
        disk_free_mib=disk_free,
    )
