"""The control plane facade every door uses: one object, built once per server."""

from __future__ import annotations

import logging
from typing import Any

import anyio

from .. import __version__
from ..domain import access
from ..domain.errors import InvalidRequest, PermissionDenied
from ..domain.isolation import PRESET_TEMPLATES, Language, Runtime
from ..domain.nodes import READY
from ..domain.principal import Principal
from ..domain.runtimes import absent_class
from ..domain.shapes import DEFAULT_SHAPE, SHAPES, get_shape
from ..domain.shell import EventRecord, SnapshotRecord
from ..node.carrier import Carrier
from ..node.routed import Fleet
from ..objects.store import ObjectStore, open_store
from ..runtime.backend import Backend
from ..runtime.host.local_addresses import local_addresses
from ..runtime.network.contract import InstanceNetwork
from ..runtime.network.egress import EgressProxy, upstream_context
from ..runtime.volumes import HostVolumes
from ..settings import Settings
from ..store.nodes import NodeStore
from ..store.repository import Store
from .audit import Audit
from .auth import Authenticator, authorize, is_platform_admin, require, visible_snapshots
from .bucket_credentials import BucketCredentialsBook
from .budgets import Budgets
from .context import ControlContext
from .dockerfile_builds import DockerfileBuilds
from .durable import Durable
from .egress_ca import InstanceEgressCA
from .expiry import Expiry
from .feed import Feed
from .image_templates import ImageTemplates
from .inside import Inside
from .leadership import Leadership
from .lifecycle import Lifecycle
from .local_node import local_offer
from .metering import Metering
from .metrics import ShellsCollector
from .networking import Networking
from .node_registry import NodeRegistry, node_view
from .node_secrets import SECRETS_POLL_S, NodeSecrets
from .placement import region_offers
from .pool import WarmPool, WarmPools
from .processes import Processes
from .reconcile import ReconcileReport, reconcile
from .relocate import Relocation
from .run_code import RunCode
from .samples import ShellSamples
from .secret_box import SecretBox, load_or_create_key
from .secrets import Secrets, ShellEgress
from .snapshots import delete_snapshot
from .storage import Storage
from .suspend import Suspension
from .templates import Templates
from .tenancy import Tenancy
from .terminal import Terminals
from .tokens import Tokens
from .volume_store import VolumeStore, volume_hosts
from .webhooks import Webhooks
from .workspace_sync import WorkspaceSync

log = logging.getLogger(__name__)


class Control:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        backends: list[Backend],
        network: InstanceNetwork,
        volumes: HostVolumes | None = None,
        *,
        dataplane: bool = True,
        carrier: Carrier | None = None,
        fleet: Fleet | None = None,
        registry: NodeRegistry | None = None,
    ) -> None:
        """``dataplane``: the shells' network is on this machine, so this process serves their DNS
        resolver and the ingress and egress proxies; False when the node is remote and serves them.
        ``carrier`` moves snapshots to and from the object store (default: this machine's own
        backends); ``fleet``: the nodes a control role moves shells between; ``registry``: a
        cluster's record of those nodes (``control.node_registry``): which are usable, what they
        offer placement, node loss and fencing."""
        self.dataplane = dataplane
        self.registry = registry
        self.ctx = ControlContext(settings, store, {b.runtime: b for b in backends}, fleet=fleet)
        if registry is not None:
            self.ctx.nodes, self.ctx.placed = registry.offers.live, registry.offers.took
        if fleet is not None:  # a class first offered by a node that joins later is placed on too
            fleet.on_class = lambda routed: self.ctx.backends.setdefault(routed.runtime, routed)
        self.network = Networking(self.ctx, network)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        box = SecretBox(load_or_create_key(settings.secrets_key_file or settings.data_dir / "secrets.key"))
        self.egress_ca = egress_ca = InstanceEgressCA(
            store, box, settings.data_dir / "egress-ca", settings.instance_id
        )
        self.secrets = Secrets(self.ctx, box, egress_ca)
        self.storage = Storage(self.ctx, box, volumes, lambda: [*local_addresses(), network.range.cidr])
        self.ctx.mounts_of = self.storage.mounts_of
        self.ctx.follow_mounts = self.storage.follow
        self.ctx.shown_mounts = self.storage.public_mounts
        shell_egress = ShellEgress(self.ctx, network, box)
        self.egress = EgressProxy(
            shell_egress,
            egress_ca,
            upstream_context(str(settings.egress_ca_file) if settings.egress_ca_file else None),
        )
        self.node_secrets = NodeSecrets(self.ctx, shell_egress, egress_ca)
        """Sends a cluster's nodes their shells' secrets for their own egress proxies."""
        self.auth = Authenticator(store, self.ctx.quotas)
        self.audit = Audit(store)
        self.templates = Templates(self.ctx)
        self.images = ImageTemplates(self.templates)
        self.dockerfiles = DockerfileBuilds(self.templates, self.images)
        self.suspension = Suspension(self.ctx)
        self.network.on_port_use = self.suspension.touch
        self.network.on_wake = self.suspension.wake
        self.terminals = Terminals(self.ctx, self.templates, self.suspension)
        self.tokens = Tokens(self.ctx, self.terminals)
        self.tenancy = Tenancy(self.ctx)
        self.pool = WarmPool(self.ctx, settings.warm_pool_size)
        self.vm_pool = WarmPool(
            self.ctx,
            settings.microvm_warm_pool_size,
            runtime=Runtime.MICROVM,
            shell_bytes=get_shape(DEFAULT_SHAPE).memory_mib << 20,  # what its guest may come to hold
        )
        self.durable = Durable(self.ctx, _object_store(settings), carrier)
        self.templates.durable = self.durable
        self.relocation = Relocation(self.ctx, self.durable)
        self.relocation.start()
        hosts = volume_hosts(settings, fleet, volumes, self.durable.objects)
        if hosts is not None:  # volumes follow their shells through the object store
            self.storage.kept = VolumeStore(self.ctx, hosts, self.durable.objects)
        self.sync = WorkspaceSync(self.ctx, box, lambda: [*local_addresses(), network.range.cidr])
        self.bucket_credentials = BucketCredentialsBook(self.ctx, box)
        self.suspension.around_save = self.sync.around_save
        self.shells = Lifecycle(
            self.ctx,
            WarmPools(self.pool, self.vm_pool),
            self.templates,
            self.network,
            self.suspension,
            secrets=self.secrets,
            durable=self.durable,
            sync=self.sync,
            storage=self.storage,
            credentials=self.bucket_credentials,
        )
        self.inside = Inside(self.ctx, self.templates, self.suspension)
        self.expiry = Expiry(self.ctx, self.shells, self.suspension)
        self.processes = Processes(self.ctx, self.inside)
        self.run_code = RunCode(self.ctx, self.inside)
        self.metering = Metering(self.ctx, self.runtimes, self.storage.gib_hours)
        self.budgets = Budgets(self.ctx, self.metering, self.suspension)
        self.metrics = ShellsCollector(self.ctx, self.metering)
        self.ctx.quotas.check_budget = self.budgets.check
        self.feed = Feed(self.ctx)
        self.samples = ShellSamples(self.ctx)
        self.webhooks = Webhooks(self.ctx, lambda: [*local_addresses(), network.range.cidr], box)
        self._box = box
        self.leadership = Leadership.from_settings(settings)
        if self.leadership is not None:  # several replicas: the singleton duties follow the Lease
            self.ctx.background.leader = self.leadership.holds

    async def start(self) -> ReconcileReport:
        """Prepare the host, reconcile records with it, and start the warm pool."""
        self.ctx.store.migrate(self._box)
        await anyio.to_thread.run_sync(self.egress_ca.load)
        self.auth.ensure_admin_token(self.ctx.settings.admin_token_path)
        await self.durable.check()
        for backend in self.ctx.backends.values():
            await backend.prepare()
        if self.storage.host is not None:  # one box: what a pack or a fetch cut short by a crash left
            await anyio.to_thread.run_sync(self.storage.host.remove_leftovers)
        await self.templates.reconcile()
        await self.network.start(dataplane=self.dataplane)
        if self.dataplane:
            for address in self.network.host.gateway_addresses():
                await self.egress.listen(address)
        if self.ctx.fleet is not None:
            self.ctx.background.every(
                "sending nodes their shells' secrets",
                SECRETS_POLL_S,
                lambda: anyio.to_thread.run_sync(self.node_secrets.send),
                singleton=True,
            )
        if self.registry is not None:  # calls carry the generations the record gave the nodes
            await self.registry.look()
        report = await reconcile(self.ctx)
        log.info("reconciled: %s", report)
        await self.relocation.settle()  # copies a move cut short left on a node that does not own them
        if self.leadership is not None:
            self.leadership.start()
        if self.registry is not None:  # nodes registered before the first create (by the duties holder)
            if self.ctx.background.leader():
                await self.registry.duty(self.ctx)
            self.registry.start(self.ctx)
        await self.durable.start()
        self.sync.start()
        if self.storage.kept is not None:
            self.storage.kept.start()
        self.pool.start()
        self.vm_pool.start()
        self.suspension.start()
        self.expiry.start()
        self.budgets.start()
        self.webhooks.start()
        self.samples.start()
        return report

    async def close(self) -> None:
        await self.processes.close()
        self.feed.close()
        await self.ctx.background.stop()
        if self.leadership is not None:
            await self.leadership.stop()
        if self.registry is not None:
            await self.registry.close()
        await self.durable.close()
        self.samples.close()
        await self.webhooks.stop()
        await self.egress.close()
        await self.network.stop()
        await self.shells.drain()

    def nodes(self, principal: Principal) -> list[dict[str, Any]]:
        """Every node with its region, classes, load and state (platform admins)."""
        if not is_platform_admin(principal):
            raise PermissionDenied(
                "Only a platform admin (the bootstrap admin token) lists the nodes.",
                {"scope": access.PLATFORM_ADMIN},
            )
        if self.registry is not None:
            return self.registry.listing()
        placed = NodeStore(self.ctx.store).placed()
        offer = local_offer(self.ctx.settings, self.ctx.backends.values())
        return [node_view(offer.name, offer, READY, None, placed.get(offer.name, 0), False)]

    def info(self) -> dict[str, Any]:
        templates: dict[str, dict[str, str]] = {r.value: b.templates() for r, b in self.ctx.backends.items()}
        return {
            "version": __version__,
            "region": self.ctx.settings.region,
            "regions": region_offers(self.ctx.offers()),
            "instance": self.ctx.settings.instance_id,
            "runtimes": {
                r.value: {
                    "available": True,
                    "details": b.details(),
                    "capabilities": sorted(c.value for c in b.capabilities),
                    "templates": templates[r.value],
                    "languages": sorted(
                        lang.value for lang in Language if PRESET_TEMPLATES[lang] in templates[r.value]
                    ),
                }
                for r, b in self.ctx.backends.items()
            },
            "languages": [lang.value for lang in Language],
            "network_modes": sorted({m.value for b in self.ctx.backends.values() for m in b.network_modes}),
            "shapes": {
                s.name: {"vcpus": s.vcpus, "memory_mib": s.memory_mib, "disk_mib": s.disk_mib}
                for s in SHAPES.values()
            },
        }

    def runtimes(self) -> list[dict[str, Any]]:
        """The runtime matrix: every language preset in every isolation class, available or why not."""
        rows: list[dict[str, Any]] = []
        for runtime in Runtime:
            backend = self.ctx.backends.get(runtime)
            offers = (
                backend.offers()
                if backend is not None
                else absent_class(runtime, f"the {runtime} class is not installed on this host")
            )
            rows += [offer.to_public(runtime) for offer in offers]
        return rows

    def events(
        self, principal: Principal, shell_id: str, after: int = 0, limit: int = 500
    ) -> list[EventRecord]:
        authorize(self.ctx.store, principal, shell_id, access.READ)
        return self.ctx.store.list_events(
            tenant=principal.tenant, shell_id=shell_id, after=after, limit=limit
        )

    def snapshots(self, principal: Principal, shell_id: str | None = None) -> list[SnapshotRecord]:
        require(principal, access.READ.scope)
        return visible_snapshots(self.ctx.store, principal, shell_id)

    async def delete_snapshot(self, principal: Principal, snapshot_id: str, door: str) -> SnapshotRecord:
        """Delete a snapshot (``control.snapshots``): its record, then the host's copy, then every
        blob of it in the object store that nothing kept names any more."""
        snap = await delete_snapshot(self.ctx, principal, snapshot_id, door)
        await self.durable.collect(snap.parts)
        return snap


def _object_store(settings: Settings) -> ObjectStore:
    try:
        return open_store(settings.object_store, settings.data_dir / "objects")
    except ValueError as exc:
        raise InvalidRequest(f"SHELLS_OBJECT_STORE: {exc}.") from None
