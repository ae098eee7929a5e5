"""Where a shell made from a snapshot goes, and the snapshot made present there (docs/cluster.md,
"A shell from a snapshot").

A snapshot lives on the disk of the node that took it (and of any node that fetched it since); a
durable one is also in the object store, from which any node can fetch it. So a create from a
snapshot asks the live nodes of the class which hold it, lets placement rank the nodes of the
region that can take the shell (``placement.place_from_snapshot``: holders first), and takes the
first that holds it or fetches it. A microvm node whose boot artifacts or machine differ from the
ones the snapshot's memory was saved with refuses the fetch (``runtime.microvm.portable``), and the
next node is tried: such a snapshot is never placed on a node that cannot load it, and that node
is not asked again for it for a while (``REFUSAL_KEPT_S``).

On one box there is one node: placement as for any shell, then the snapshot fetched if this
machine does not hold it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Sequence

from ..domain.errors import ActionNotSupported, ShellsError, SnapshotNotPlaceable
from ..domain.nodes import NodeOffer
from ..domain.shapes import Shape
from ..domain.shell import SnapshotRecord
from ..node.routed import Fleet
from .context import ControlContext
from .durable import Durable
from .placement import SnapshotSource, place, place_from_snapshot

log = logging.getLogger(__name__)
REFUSAL_KEPT_S = 600.0
"""How long a node that refused to load a snapshot is not asked again for it (the refusal comes
after the parts were fetched: a microvm's memory, perhaps gigabytes); a node whose Shells was
upgraded meanwhile may load it after that."""
REFUSALS_KEPT = 1024
ASK_S = 5.0
"""How long a node has to say whether it holds the snapshot (a node that hangs, stopped or cut off
but not yet declared gone, must not hold up the create)."""


class SnapshotPlacement:
    def __init__(self, ctx: ControlContext, durable: Durable | None) -> None:
        self.ctx = ctx
        self.durable = durable
        self._refused: dict[tuple[str, str], tuple[float, str]] = {}
        """(snapshot, node) → when the node refused to load it, and why."""

    async def place(
        self, snap: SnapshotRecord, region: str, shape: Shape, cordoned: Collection[str]
    ) -> NodeOffer:
        """The node a shell from ``snap`` goes to, with the snapshot on its disk once this returns."""
        fleet = self.ctx.fleet
        if fleet is None:
            node = place(self.ctx.offers(), region, snap.runtime, shape, cordoned)
            if self.durable is not None:  # taken on another machine: fetched from the object store
                await self.durable.ensure_snapshot_here(snap)
            return node
        offers = self.ctx.offers()
        source = await self.source(fleet, snap, offers)
        ranked = place_from_snapshot(offers, region, snap.runtime, shape, cordoned, source)
        refused: dict[str, str] = {}
        for offer in ranked:
            if offer.name in source.held_on:
                return offer
            if (why := self._refusal(snap.id, offer.name)) is not None:
                refused[offer.name] = why
                continue
            assert self.durable is not None  # only a durable snapshot ranks other nodes
            try:
                await self.durable.ensure_snapshot_here(snap, offer.name)
            except ActionNotSupported as exc:  # a microvm node whose machine differs
                log.info("node %s cannot load snapshot %s: %s", offer.name, snap.id, exc.message)
                refused[offer.name] = exc.message
                self._remember(snap.id, offer.name, exc.message)
                continue
            return offer
        raise SnapshotNotPlaceable(
            f"No node in region '{region}' that can take the shell can load snapshot '{snap.id}' "
            f"({'; '.join(f'{n}: {why}' for n, why in refused.items())}); create it in the region "
            "of the node that took it.",
            {"snapshot": snap.id, "region": region, "refused": sorted(refused)},
        )

    def _refusal(self, snapshot_id: str, node: str) -> str | None:
        found = self._refused.get((snapshot_id, node))
        if found is None or time.monotonic() - found[0] > REFUSAL_KEPT_S:
            return None
        return found[1]

    def _remember(self, snapshot_id: str, node: str, why: str) -> None:
        if len(self._refused) >= REFUSALS_KEPT:
            self._refused.clear()
        self._refused[(snapshot_id, node)] = (time.monotonic(), why)

    async def source(self, fleet: Fleet, snap: SnapshotRecord, offers: Sequence[NodeOffer]) -> SnapshotSource:
        """Which live nodes (those that offer, cordoned ones too) of the snapshot's class hold it
        now (asked each; one that does not answer within ``ASK_S`` holds nothing for this create),
        and whether others can fetch it."""
        names = [o.name for o in offers if snap.runtime in o.classes]

        async def holds(name: str) -> bool:
            try:
                inventory = await asyncio.wait_for(fleet.backend(name, snap.runtime).inventory(), ASK_S)
            except (ShellsError, TimeoutError) as exc:
                log.info("node %s did not say whether it holds %s: %s", name, snap.id, exc)
                return False
            return snap.id in inventory.snapshots

        found = await asyncio.gather(*(holds(n) for n in names))
        held = frozenset(n for n, yes in zip(names, found, strict=True) if yes)
        # without a shared object store each node keeps its own: no other node can fetch it there
        shared = self.ctx.settings.object_store is not None
        durable = self.durable is not None and snap.durable_at is not None and shared
        return SnapshotSource(snap.id, held, durable)


__all__ = ["SnapshotPlacement"]
