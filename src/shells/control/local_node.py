"""One box: this host is the instance's one node, in ``settings.region``, offering the classes
whose backends run here, with the room the host has now (``cluster.membership.measured_offer``)."""

from __future__ import annotations

import socket
from collections.abc import Iterable

from ..cluster.membership import measured_offer
from ..domain.isolation import Runtime
from ..domain.nodes import NodeOffer
from ..runtime.backend import Backend
from ..settings import Settings


def local_offer(settings: Settings, backends: Iterable[Backend]) -> NodeOffer:
    classes = {b.runtime: b for b in backends}
    microvm = classes.get(Runtime.MICROVM)
    accel = microvm.details().get("accel", "") if microvm is not None else ""
    return measured_offer(
        socket.gethostname(), "", settings.region, settings.zone, classes, accel, settings.data_dir
    )
