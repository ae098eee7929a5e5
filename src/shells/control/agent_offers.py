"""The live nodes of a control role that drives node agents (``--node``, and those found by their
Kubernetes Leases, ``control.node_registry``): each agent's own offer (``Node.offer``: its region,
zone, classes and room, measured on the node), asked again at most every ``REFRESH_S`` in a worker
thread, with every shell this replica placed in the last ``COUNTED_S`` counted against its node
(``NodeOffer.taking``).

Why count them: a new shell shows in its node's measurement only once it runs and uses memory, and
then far less than its shape, so nodes that look alike would look alike again at every refresh and
the same one would win each time. Counting each placement for a while spreads a burst of creates
evenly over a region's nodes (and keeps spreading a steady stream) whatever the measurements say.

A node that does not answer keeps its last offer (its calls fail as ``unavailable``) until the node
registry no longer counts it usable (gone, or not yet registered): only usable nodes are offered."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping

from ..domain.nodes import NodeOffer
from ..domain.shapes import Shape
from ..node import Node

log = logging.getLogger(__name__)

REFRESH_S = 2.0
COUNTED_S = 10.0


class AgentOffers:
    def __init__(self, nodes: Mapping[str, Node]) -> None:
        """``nodes``: the fleet's members, read at every refresh (nodes join and leave)."""
        self._nodes = nodes
        self.usable: Callable[[str], bool] = lambda name: True
        """Whether a node may be offered now (``NodeRegistry.usable``: alive, registered)."""
        self._measured: dict[str, NodeOffer] = {}
        self._placed: deque[tuple[float, str, Shape]] = deque()
        self._at = -math.inf
        self._task: asyncio.Task[None] | None = None
        self.refresh()  # placement needs them from the first create

    def refresh(self) -> None:
        """Ask every node for its offer now (blocking: at start-up, else in a worker thread)."""
        for node in list(self._nodes.values()):
            self.ask(node)
        self._at = time.monotonic()

    def ask(self, node: Node) -> None:
        """Ask one node for its offer now (blocking): a node that just joined is placed on from its
        first look, not from the next refresh. One that does not answer keeps its last offer."""
        if node.offer is None:
            return
        try:
            offer = node.offer()
        except Exception as exc:  # unreachable now: its last offer stands
            log.warning("node %s did not say what it offers: %s", node.name, exc)
            return
        if offer is not None:
            self._measured[node.name] = offer

    def live(self) -> list[NodeOffer]:
        """The nodes' offers less what was placed on them lately, by name; starts a refresh when the
        last is older than ``REFRESH_S``."""
        now = time.monotonic()
        if now - self._at > REFRESH_S and (self._task is None or self._task.done()):
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to refresh with
                self._task = asyncio.get_running_loop().create_task(asyncio.to_thread(self.refresh))
        while self._placed and self._placed[0][0] < now - COUNTED_S:
            self._placed.popleft()
        offers = {n: o for n, o in self._measured.items() if n in self._nodes and self.usable(n)}
        for _, name, shape in self._placed:
            if name in offers:
                offers[name] = offers[name].taking(shape)
        return sorted(offers.values(), key=lambda o: o.name)

    def measured(self, name: str) -> NodeOffer | None:
        """Node ``name``'s last answer to ``offer``, if it gave one."""
        return self._measured.get(name)

    def took(self, offer: NodeOffer, shape: Shape) -> None:
        """Count a shell of ``shape`` placed on ``offer``'s node for the next ``COUNTED_S``."""
        self._placed.append((time.monotonic(), offer.name, shape))
