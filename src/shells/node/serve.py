"""Run this machine as a node agent: its backends and network behind the authenticated RPC, and
the shells' DNS resolver on the node's gateways (it answers from the node's own network state),
the ingress proxy of its shells' exposed ports (``node.ingress``, on ``SHELLS_INGRESS_HOST`` and
``SHELLS_INGRESS_PORT``; any free port when unset), the egress proxy that swaps its shells' secrets
into their HTTPS (``node.egress``),
and the node's own connection to the instance's object store (``SHELLS_OBJECT_STORE``, the same
store every machine of the instance names), through which it keeps and fetches snapshots."""

from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import uvicorn
from starlette.applications import Starlette

from ..cluster.kube import Kube
from ..cluster.membership import NodePublisher, measured_offer, node_topology
from ..control.leadership import kube_config, lease_timing
from ..domain.errors import InvalidRequest, ObjectStoreUnavailable
from ..domain.isolation import Runtime
from ..domain.limits import NODE_RPC_MAX_FRAME_BYTES
from ..domain.nodes import NodeOffer
from ..objects.store import ObjectStoreError, open_store
from ..runtime.network.dataplane import HostNetwork
from ..runtime.network.dns_upstream import configured_upstreams
from ..runtime.network.resolver import DnsResolver
from ..runtime.network.shell_dns import RefusalLog, ShellDns
from ..settings import Settings
from .agent import NodeAgent
from .carrier import LocalCarrier
from .egress import NodeEgress
from .ingress import NodeIngress
from .local import local_node
from .tls import node_tls
from .volume_copies import LocalVolumeCarrier
from .wire import Signer

log = logging.getLogger(__name__)


def node_app(settings: Settings, secret: bytes, address: str = "") -> Starlette:
    """The node agent's app; its lifespan prepares the host, serves DNS to the shells and, when a
    Kubernetes API is configured, holds the node's Lease publishing its offer at ``address``."""
    node = local_node(settings)
    network = node.network
    assert isinstance(network, HostNetwork)
    refusals = RefusalLog()
    try:
        objects = open_store(settings.object_store, settings.data_dir / "objects")
    except ValueError as exc:
        raise InvalidRequest(f"SHELLS_OBJECT_STORE: {exc}.") from None
    backends = {b.runtime: b for b in node.backends}
    node.carrier = LocalCarrier(backends, objects, settings.data_dir / "durable")
    if node.volumes is not None:  # its volume copies go to and from the store from here, too
        node.volume_carrier = LocalVolumeCarrier(node.volumes, objects, settings.data_dir / "durable")

    where = {"region": settings.region, "zone": settings.zone}
    """The node's topology: the settings', or its Kubernetes Node's labels once it holds a Lease."""

    def offer() -> NodeOffer:
        """What the node offers placement, measured now: one offer for the ``offer`` call and the
        Lease alike."""
        classes = [b.runtime for b in node.backends]
        vms = [b for b in node.backends if b.runtime is Runtime.MICROVM]
        accel = vms[0].details().get("accel", "") if vms else ""
        return measured_offer(
            node.name, address, where["region"], where["zone"], classes, accel, settings.data_dir
        )

    ingress = NodeIngress(
        settings.run_dir / "netns", settings.ingress_host, settings.ingress_port or 0, settings.ingress_domain
    )
    egress = NodeEgress(
        network,
        settings.data_dir / "egress-ca",
        settings.instance_id,
        str(settings.egress_ca_file) if settings.egress_ca_file else None,
    )
    agent = NodeAgent(
        node, Signer(secret), refusals, settings.data_dir / "node-generation", offer, ingress, egress
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:  # the node moves its own snapshots: a wrong store stops it with the reason
            await objects.check()
        except ObjectStoreError as exc:
            raise ObjectStoreUnavailable(
                f"The object store (SHELLS_OBJECT_STORE) cannot be used: {exc}"
            ) from None
        shutil.rmtree(settings.data_dir / "durable", ignore_errors=True)
        for backend in node.backends:
            await backend.prepare()
        if node.volumes is not None:  # what a pack or a fetch cut short by a crash left
            await anyio.to_thread.run_sync(node.volumes.remove_leftovers)
        resolver = DnsResolver(
            ShellDns(network, network.network_name, refusals), configured_upstreams(settings.dns_upstreams)
        )
        for gateway in network.gateway_addresses():
            await resolver.listen(gateway)
        await ingress.start()
        await egress.start()
        log.info("exposed ports answer on %s", ingress.address)
        log.info("node %s ready: %s", node.name, ", ".join(b.runtime.value for b in node.backends))
        publisher = await publish_node(settings, node.name, offer, where)
        try:
            yield
        finally:
            if publisher is not None:  # kept: a restart within one lease loses no shell
                await publisher.stop(release=False)
            await ingress.close()
            await egress.close()
            await resolver.close()
            await objects.aclose()

    app = agent.app()
    app.router.lifespan_context = lifespan
    return app


async def publish_node(
    settings: Settings, name: str, offer: Callable[[], NodeOffer], where: dict[str, str]
) -> NodePublisher | None:
    """Hold this node's Lease with its ``offer`` (``cluster.membership``) when ``SHELLS_KUBE_URL`` is
    set, after setting ``where`` to its Kubernetes Node's topology; None on a node without
    Kubernetes (the control plane then knows it by its ``--node`` URL)."""
    config = kube_config(settings)
    if config is None:
        return None
    kube = Kube(config)
    where["region"], where["zone"] = await node_topology(kube, name, settings.region, settings.zone)
    publisher = NodePublisher(kube, offer, lease_timing(settings.lease_duration_s), close=kube.aclose)
    publisher.start()
    return publisher


def serve_node(settings: Settings, host: str, port: int, secret: bytes) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    tls = node_tls(settings)
    uvicorn.run(
        node_app(settings, secret, address),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        ws_max_size=NODE_RPC_MAX_FRAME_BYTES + 4096,
        timeout_graceful_shutdown=5,
        **(tls.server_options() if tls is not None else {}),
    )
