"""What every use case shares: the store, the backends, quotas, per-shell locks, the restarts under
way, and the audit helper."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..domain.audit import DEFAULT_DOOR
from ..domain.errors import FeatureUnavailable
from ..domain.isolation import Runtime
from ..domain.mounts import BucketMount
from ..domain.nodes import NodeOffer
from ..domain.principal import Principal
from ..domain.shapes import DEFAULT_SHAPE, Shape, get_shape
from ..domain.shell import ShellRecord
from ..node.routed import Fleet
from ..runtime.backend import Backend, ShellSpec, VolumeMount
from ..settings import Settings
from ..store.moves import MoveStore
from ..store.networking import NetworkingStore
from ..store.repository import EventDraft, Store
from ..store.secrets import SecretsStore
from .background import Background
from .local_node import local_offer
from .placement import place
from .quotas import Quotas
from .request_scope import current_request
from .restarts import Restarts


@dataclass
class ControlContext:
    settings: Settings
    store: Store
    backends: dict[Runtime, Backend]
    locks: defaultdict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))
    restarts: Restarts = field(default_factory=Restarts)
    background: Background = field(default_factory=Background)
    """Every loop beside requests (``control.background``): started by the use cases, stopped once."""
    nodes: Callable[[], list[NodeOffer]] | None = None
    """The live nodes placement chooses from (a cluster's membership); None: this host alone."""
    placed: Callable[[NodeOffer, Shape], None] | None = None
    """Told of every shell placement put on a node, to count it against the node's offer until the
    node offers again (``control.agent_offers``); None: nothing counts."""
    quotas: Quotas = field(init=False)
    mounts_of: Callable[[ShellRecord], tuple[tuple[BucketMount, ...], tuple[VolumeMount, ...]]] | None = None
    """What a shell's start mounts (``control.storage``); None where storage is not wired."""
    follow_mounts: Callable[[ShellRecord, str], Awaitable[None]] | None = None
    """Before a shell is made on another node (a move): its volumes' newest copies there
    (``control.storage``)."""
    shown_mounts: Callable[[str], dict[str, Any]] | None = None
    """A shell's mounts and volumes as its record shows them (never a credential)."""
    fleet: Fleet | None = None
    """A control role's nodes by name, for moving shells between them (``control.relocate``)."""
    at_rest: Callable[[ShellRecord], None] | None = None
    """Told when a shell has just paused or stopped: a control role saves its state to the object
    store in the background, so a shell of a node that is lost can start again elsewhere."""

    moved: list[Callable[[ShellRecord], None]] = field(default_factory=list)
    """Told when a shell has just paused, stopped or resumed: a cluster sends the shell's node its
    table of exposed ports at once (``control.node_ports``), not at the next pass."""

    def rested(self, shell: ShellRecord) -> ShellRecord:
        """``shell`` (just paused or stopped) after telling ``at_rest`` and ``moved``."""
        if self.at_rest is not None:
            self.at_rest(shell)
        return self.changed(shell)

    def changed(self, shell: ShellRecord) -> ShellRecord:
        """``shell`` (just paused, stopped or resumed) after telling ``moved``."""
        for tell in self.moved:
            tell(shell)
        return shell

    def __post_init__(self) -> None:
        self.quotas = Quotas(self.settings, self.store)

    def offers(self) -> list[NodeOffer]:
        """What every node offers now: the cluster's live nodes, or this host as the one node."""
        if self.nodes is not None:
            return self.nodes()
        return [local_offer(self.settings, self.backends.values())]

    def node_for(self, runtime: Runtime, offer: NodeOffer | None = None) -> str:
        """The node that will hold a new shell (recorded on the shell before it is made): the one
        placement chose (a warm shell: one in this server's region, never a cordoned node), else
        this server's."""
        if offer is None and self.nodes is not None:
            cordoned = MoveStore(self.store).cordoned()
            offer = place(self.offers(), self.settings.region, runtime, get_shape(DEFAULT_SHAPE), cordoned)
        return self.settings.node_name if offer is None else offer.name

    def backend(self, runtime: Runtime) -> Backend:
        try:
            return self.backends[runtime]
        except KeyError:
            available = ", ".join(r.value for r in self.backends) or "none"
            raise FeatureUnavailable(
                f"The '{runtime}' isolation class is not available on this host (available: {available}).",
                {"field": "runtime"},
            ) from None

    def public(self, shell: ShellRecord) -> dict[str, Any]:
        """The shell's wire form plus how its class runs here (``runtime_details``)."""
        backend = self.backends.get(shell.runtime)
        shown = self.shown_mounts(shell.id) if self.shown_mounts is not None else {}
        return shell.to_public() | shown | {"runtime_details": backend.details() if backend else {}}

    def spec(self, shell: ShellRecord) -> ShellSpec:
        """What the backend needs to (re)start the shell, private networks and mounts included."""
        buckets, volumes = self.mounts_of(shell) if self.mounts_of is not None else ((), ())
        return ShellSpec(
            host_id=shell.id,
            template=shell.template,
            shape=get_shape(shell.shape),
            network=shell.network,
            source_snapshot=shell.source_snapshot,
            networks=tuple(n.private() for n in NetworkingStore(self.store).memberships(shell.id)),
            hostname=shell.name,
            brokered=SecretsStore(self.store).has_secrets(shell.id),
            buckets=buckets,
            volumes=volumes,
        )

    @staticmethod
    def draft(
        principal: Principal | None,
        shell: ShellRecord | None,
        *,
        door: str = DEFAULT_DOOR,
        kind: str,
        action: str,
        outcome: str = "ok",
        message: str = "",
        details: dict[str, Any] | None = None,
        tenant: str | None = None,
        target: str | None = None,
    ) -> EventDraft:
        """The audit event of an action. Inside a request, the request's door (``X-Shells-Door``
        through REST) and id win over ``door``, which in-process doors pass."""
        request = current_request()
        return EventDraft(
            tenant=tenant or (shell.tenant if shell else principal.tenant if principal else ""),
            shell_id=shell.id if shell else None,
            principal=principal.id if principal else "system",
            door=request.door if request is not None else door,
            kind=kind,
            action=action,
            outcome=outcome,
            message=message,
            details=details or {},
            target=target,
            request=request,
        )
