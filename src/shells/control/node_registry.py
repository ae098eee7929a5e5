"""The control plane's view of its nodes in a cluster: which answer, which the record counts ready
or gone, node loss and fencing.

Nodes come from two sources: the ``--node`` URLs (static; alive while they answer a ``hello``
within ``grace_s``) and, with a Kubernetes API, the node Leases (``cluster.membership``; alive
while the Lease is renewed). Every replica keeps a client to each alive node (in the routed
``node.routed.Fleet``, which moves between nodes use too) and drops it when the node goes; the
record (``store.nodes``) says which nodes are ready. Placement takes only usable nodes (alive,
ready, not cordoned: ``MoveStore.cordoned``), from what each answers to the ``offer`` call
(``control.agent_offers``), whichever way it was found.

Two singleton duties (only the ``shells-control`` Lease holder runs them, ``control.leadership``):

- **Loss**: a node the record holds ready that is no longer alive is recorded gone, and every shell
  the record keeps there becomes ``lost`` (one still being created: ``failed``) with a reason naming
  the node and when it was declared gone: an audit event each, which feeds the live feed and the
  ``lost`` webhook. Nothing else is touched.
- **Registration (fencing)**: an alive node the record does not hold ready (new, or back after being
  gone) gets the next generation: the node is told it first (``node/fence``; from then on it refuses
  calls of an older one), then told to destroy every shell the record no longer assigns to it
  (lost, moved or deleted meanwhile), and only then recorded ready and placed on again. So a node
  that was partitioned or stopped never brings back a shell the record gave up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from ..cluster.membership import Membership
from ..control.local_node import UNBOUNDED_MIB
from ..domain.errors import RecordUnavailable, ShellsError
from ..domain.nodes import GONE, READY, NodeOffer, NodeRecord
from ..domain.states import ShellState
from ..node import Node
from ..node.client import NodeClient
from ..node.remote import RemoteBackend, node_over
from ..node.routed import Fleet
from ..node.wire import Signer
from ..settings import Settings
from ..store.moves import MoveStore
from ..store.nodes import NodeStore
from ..store.repository import Store
from .agent_offers import AgentOffers
from .context import ControlContext

log = logging.getLogger(__name__)

STEP_S = 1.0
"""How often a replica looks at its nodes, and the leader declares losses and registrations."""
PING_TIMEOUT_S = 2.0
CALL_TIMEOUT_S = 30.0
"""Bounds connecting to a node, fencing it and registering it: a node that stops mid-way (SIGSTOP,
a partition) must not hold up the looks and duties for every other node."""


@dataclass
class _Known:
    """A node this replica reaches (or tried to)."""

    url: str
    static: bool
    client: NodeClient
    node: Node | None = None
    answered: float = -math.inf
    """Our monotonic time of its last answer to a ``hello`` (static nodes)."""
    pinging: asyncio.Task[None] | None = field(default=None, repr=False)


class NodeRegistry:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        signer: Signer,
        fleet: Fleet,
        urls: dict[str, tuple[str, bool]],
        membership: Membership | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``urls``: the nodes already connected in ``fleet``, name → (URL, whether it is a
        ``--node`` agent rather than one found by its Lease)."""
        self.settings = settings
        self.store = store
        self.records = NodeStore(store)
        self.signer = signer
        self.fleet = fleet
        self.offers = AgentOffers(fleet.members)
        """What each connected node offers placement (its ``offer`` call), usable nodes only."""
        self.membership = membership
        self.clock = clock
        self.grace_s = settings.lease_duration_s
        self._known: dict[str, _Known] = {}
        now = clock()
        for name, (url, static) in urls.items():
            node = fleet.members[name]
            self._known[name] = _Known(url, static, _client_of(node), node, answered=now)
        self._record: dict[str, NodeRecord] = {}
        self._cordoned: set[str] = set()
        self._closing: set[asyncio.Task[None]] = set()
        fleet.usable, self.offers.usable = self.usable, self.registered
        fleet.network.linked = self.registered

    # what placement and the admin see ----------------------------------------------------------
    def alive(self, name: str) -> bool:
        known = self._known.get(name)
        if known is None or known.node is None:
            return False
        if self.membership is not None and any(o.name == name for o in self.membership.live()):
            return True
        return known.static and self.clock() - known.answered < self.grace_s

    def usable(self, name: str) -> bool:
        """Takes template builds and moved shells now: registered, not cordoned (as of the last look;
        placement and moves read the cordons afresh too)."""
        return self.registered(name) and name not in self._cordoned

    def registered(self, name: str) -> bool:
        """Alive and ready in the record: its offer is placed on (placement passes over cordons)."""
        record = self._record.get(name)
        return self.alive(name) and record is not None and record.ready

    def offer_of(self, name: str) -> NodeOffer:
        """Its last answer to the ``offer`` call, or (none yet) the control plane's region, the
        classes it runs and no bound on room."""
        known = self._known[name]
        if (measured := self.offers.measured(name)) is not None:
            return measured
        backends = known.node.backends if known.node is not None else []
        microvm = next((b for b in backends if b.runtime.value == "microvm"), None)
        return NodeOffer(
            name=name,
            address=known.url,
            region=self.settings.region,
            zone=self.settings.zone,
            classes=frozenset(b.runtime for b in backends),
            accel=microvm.details().get("accel", "") if microvm is not None else "",
            cpus=math.inf,
            cpu_free=math.inf,
            memory_free_mib=UNBOUNDED_MIB,
            disk_free_mib=UNBOUNDED_MIB,
        )

    def listing(self) -> list[dict[str, Any]]:
        """Every node the record or this replica knows (``GET /v1/admin/nodes``)."""
        placed = self.records.placed()
        records = self.records.all()
        cordoned = MoveStore(self.store).cordoned()
        out: list[dict[str, Any]] = []
        for name in sorted(set(records) | set(self._known)):
            record = records.get(name)
            state = READY if record is not None and record.ready and self.alive(name) else GONE
            offer = self.offer_of(name) if name in self._known else None
            out.append(node_view(name, offer, state, record, placed.get(name, 0), name in cordoned))
        return out

    # every replica -------------------------------------------------------------------------------
    def start(self, ctx: ControlContext) -> None:
        if self.membership is not None:
            ctx.background.run("node membership", lambda: self.membership.run(STEP_S))  # type: ignore[union-attr]
        ctx.background.every("node connections", STEP_S, self.look)
        ctx.background.every("node loss and registration", STEP_S, lambda: self.duty(ctx), singleton=True)

    async def look(self) -> None:
        """Connect to nodes that appeared, ping the static ones, follow the record's generations,
        and drop the connections to nodes whose Lease expired."""
        try:
            self._record = self.records.all()
            self._cordoned = MoveStore(self.store).cordoned()
        except RecordUnavailable as e:  # the nodes are still pinged: a restart of the database
            log.warning("node look without the record (%s); its last reading stands", e.message)
        if self.membership is not None:
            for offer in self.membership.live():
                if offer.name not in self._known and offer.address:
                    url = f"http://{offer.address}"
                    self._known[offer.name] = _Known(url, False, NodeClient(url, self.signer))
        leased = {o.name for o in self.membership.live()} if self.membership is not None else set()
        for name, known in list(self._known.items()):
            if not known.static and name not in leased:
                self._forget(name)
                continue
            if known.static and (known.pinging is None or known.pinging.done()):
                known.pinging = asyncio.get_running_loop().create_task(self._ping(known))
            if known.node is None:
                with contextlib.suppress(ShellsError, httpx.HTTPError, OSError, TimeoutError):
                    async with asyncio.timeout(CALL_TIMEOUT_S):
                        known.node = await asyncio.to_thread(node_over, known.client)
            record = self._record.get(name)
            if known.node is None:
                continue
            if record is not None and record.ready and known.client.generation < record.generation:
                with contextlib.suppress(ShellsError, TimeoutError):
                    async with asyncio.timeout(CALL_TIMEOUT_S):
                        await known.client.call("node", "fence", record.generation)
                    known.client.generation = record.generation
            if name not in self.fleet.members and self.alive(name):
                self.fleet.add(known.node)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PING_TIMEOUT_S):
                        await asyncio.to_thread(self.offers.ask, known.node)

    async def _ping(self, known: _Known) -> None:
        with contextlib.suppress(ShellsError, TimeoutError, httpx.HTTPError, OSError):
            async with asyncio.timeout(PING_TIMEOUT_S):
                await known.client.call("node", "hello")
            known.answered = self.clock()

    def _forget(self, name: str) -> None:
        """A node found by its Lease whose Lease expired: its client is closed in the background
        (closing sessions to a node that does not answer waits for their timeouts); a new one is
        made if it comes back."""
        known = self._known.pop(name)
        closing = self.fleet.remove(name) if name in self.fleet.members else known.client.aclose()
        task = asyncio.get_running_loop().create_task(closing)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        await asyncio.gather(*self._closing, return_exceptions=True)
        for known in self._known.values():
            if known.pinging is not None:
                known.pinging.cancel()
                with contextlib.suppress(BaseException):
                    await known.pinging
        await self.fleet.close()
        for known in self._known.values():
            await known.client.aclose()
        if self.membership is not None:
            await self.membership.kube.aclose()

    # the leader ----------------------------------------------------------------------------------
    async def duty(self, ctx: ControlContext) -> None:
        records = self.records.all()
        for name, record in records.items():
            if record.ready and not self.alive(name):
                self._lose(ctx, record)
        for name, known in list(self._known.items()):
            now = records.get(name)
            if known.node is not None and self.alive(name) and (now is None or not now.ready):
                try:
                    async with asyncio.timeout(CALL_TIMEOUT_S):
                        await self._register(name, known, now)
                except ShellsError as e:
                    log.warning("registering node %s failed (%s); trying again", name, e.message)
                except TimeoutError:
                    log.warning("registering node %s took over %g s; trying again", name, CALL_TIMEOUT_S)

    def _lose(self, ctx: ControlContext, record: NodeRecord) -> None:
        known = self._known.get(record.name)
        at = datetime.now(UTC).isoformat(timespec="seconds")
        why = (
            f"stopped answering for {self.grace_s:g} s"
            if known is not None and known.static
            else f"its Kubernetes Lease expired (not renewed for {self.grace_s:g} s)"
        )
        reason = f"node {record.name} is gone: {why}; declared at {at}"
        if not self.records.mark_gone(record.name, record.generation, reason):
            return
        self._record.pop(record.name, None)
        log.warning("%s", reason)
        for shell in self.records.assigned(record.name):
            if shell.pooled:
                self.store.purge_shell(shell.id)
                continue
            target = ShellState.FAILED if shell.state is ShellState.CREATING else ShellState.LOST
            if shell.state is ShellState.FAILED:
                continue
            draft = ctx.draft(
                None, shell, door="system", kind="state", action="node_lost", outcome=target.value,
                message=reason, details={"node": record.name, "generation": record.generation},
            )  # fmt: skip
            with contextlib.suppress(ShellsError):  # it changed meanwhile (deleted): nothing to do
                self.store.change_state(shell.id, target, reason, draft)

    async def _register(self, name: str, known: _Known, record: NodeRecord | None) -> None:
        generation = (record.generation if record is not None else 0) + 1
        known.client.generation = generation
        await known.client.call("node", "fence", generation)
        assert known.node is not None
        found: dict[str, RemoteBackend] = {}
        for backend in known.node.backends:
            assert isinstance(backend, RemoteBackend)
            inventory = await backend.inventory()
            for host_id in inventory.running | inventory.paused | inventory.stored:
                found[host_id] = backend
        keep = {s.id for s in self.records.assigned(name)}
        keep |= {h for h, n in self.fleet.routes.unrecorded.items() if n == name}
        for host_id in sorted(set(found) - keep):
            log.warning("node %s still held shell %s, which the record gave up: destroying it", name, host_id)
            await found[host_id].destroy(host_id)
        self._record[name] = self.records.register(name, generation)
        log.info("node %s registered (generation %d)", name, generation)


def _client_of(node: Node) -> NodeClient:
    backend = node.backends[0]
    assert isinstance(backend, RemoteBackend)
    return backend.client


def node_view(
    name: str, offer: NodeOffer | None, state: str, record: NodeRecord | None, placed: int, cordoned: bool
) -> dict[str, Any]:
    """One node as ``shells admin node ls`` shows it."""

    def finite(value: float | int) -> float | int | None:
        return None if offer is None or value >= UNBOUNDED_MIB or value == math.inf else value

    return {
        "name": name,
        "region": offer.region if offer is not None else None,
        "zone": offer.zone if offer is not None else None,
        "classes": sorted(c.value for c in offer.classes) if offer is not None else [],
        "accel": (offer.accel or None) if offer is not None else None,
        "state": state,
        "cordoned": cordoned,
        "generation": record.generation if record is not None else 0,
        "reason": record.reason if record is not None else "",
        "shells": placed,
        "cpus": finite(offer.cpus) if offer is not None else None,
        "cpu_free": finite(offer.cpu_free) if offer is not None else None,
        "memory_free_mib": finite(offer.memory_free_mib) if offer is not None else None,
        "disk_free_mib": finite(offer.disk_free_mib) if offer is not None else None,
    }


__all__ = ["NodeRegistry", "node_view"]
