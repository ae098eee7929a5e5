"""The live nodes of a control role that drives a fixed list of node agents (``--node``): each
agent's own offer (``Node.offer``: its region, zone, classes and room, measured on the node), asked
again at most every ``REFRESH_S`` in a worker thread, with what this replica placed since counted
against it (``NodeOffer.taking``), so a burst of creates spreads over a region's nodes instead of
piling onto the one that looked emptiest at the last look. A node that does not answer keeps its
last offer (its calls fail as ``unavailable``); telling a lost node is the Kubernetes membership's
job (``cluster.membership``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence

from ..domain.nodes import NodeOffer
from ..domain.shapes import Shape
from ..node import Node

log = logging.getLogger(__name__)

REFRESH_S = 2.0


class AgentOffers:
    def __init__(self, nodes: Sequence[Node]) -> None:
        self._nodes = [n for n in nodes if n.offer is not None]
        self._offers: dict[str, NodeOffer] = {}
        self._at = -math.inf
        self._task: asyncio.Task[None] | None = None
        self.refresh()  # placement needs them from the first create

    def refresh(self) -> None:
        """Ask every node for its offer now (blocking: at start-up, else in a worker thread)."""
        for node in self._nodes:
            assert node.offer is not None
            try:
                offer = node.offer()
            except Exception as exc:  # unreachable now: its last offer stands
                log.warning("node %s did not say what it offers: %s", node.name, exc)
                continue
            if offer is not None:
                self._offers[node.name] = offer
        self._at = time.monotonic()

    def live(self) -> list[NodeOffer]:
        """The nodes' offers, by name; starts a refresh when the last is older than ``REFRESH_S``."""
        stale = time.monotonic() - self._at > REFRESH_S
        if stale and (self._task is None or self._task.done()):
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to refresh with
                self._task = asyncio.get_running_loop().create_task(asyncio.to_thread(self.refresh))
        return sorted(self._offers.values(), key=lambda o: o.name)

    def took(self, offer: NodeOffer, shape: Shape) -> None:
        """Count a shell of ``shape`` placed on ``offer``'s node until that node's next offer."""
        current = self._offers.get(offer.name)
        if current is not None:
            self._offers[offer.name] = current.taking(shape)
