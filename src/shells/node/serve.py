"""Run this machine as a node agent: its backends and network behind the authenticated RPC, and
the shells' DNS resolver on the node's gateways (it answers from the node's own network state)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.applications import Starlette

from ..cluster.kube import Kube
from ..cluster.membership import NodeOffer, NodePublisher, measured_offer, node_topology
from ..control.leadership import kube_config, lease_timing
from ..domain.isolation import Runtime
from ..domain.limits import NODE_RPC_MAX_FRAME_BYTES
from ..runtime.network.dataplane import HostNetwork
from ..runtime.network.dns_upstream import configured_upstreams
from ..runtime.network.resolver import DnsResolver
from ..runtime.network.shell_dns import RefusalLog, ShellDns
from ..settings import Settings
from . import Node
from .agent import NodeAgent
from .local import local_node
from .wire import Signer

log = logging.getLogger(__name__)


def node_app(settings: Settings, secret: bytes, address: str = "") -> Starlette:
    """The node agent's app; its lifespan prepares the host, serves DNS to the shells and, when a
    Kubernetes API is configured, holds the node's Lease publishing its offer at ``address``."""
    node = local_node(settings)
    network = node.network
    assert isinstance(network, HostNetwork)
    refusals = RefusalLog()
    agent = NodeAgent(node, Signer(secret), refusals, settings.data_dir / "node-generation")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for backend in node.backends:
            await backend.prepare()
        resolver = DnsResolver(
            ShellDns(network, network.network_name, refusals), configured_upstreams(settings.dns_upstreams)
        )
        for gateway in network.gateway_addresses():
            await resolver.listen(gateway)
        log.info("node %s ready: %s", node.name, ", ".join(b.runtime.value for b in node.backends))
        publisher = await publish_node(settings, node, address)
        try:
            yield
        finally:
            if publisher is not None:  # kept: a restart within one lease loses no shell
                await publisher.stop(release=False)
            await resolver.close()

    app = agent.app()
    app.router.lifespan_context = lifespan
    return app


async def publish_node(settings: Settings, node: Node, address: str) -> NodePublisher | None:
    """Hold this node's Lease with its offer (``cluster.membership``) when ``SHELLS_KUBE_URL`` is
    set; None on a node without Kubernetes (the control plane then knows it by its ``--node`` URL)."""
    config = kube_config(settings)
    if config is None:
        return None
    kube = Kube(config)
    region, zone = await node_topology(kube, node.name, settings.region, settings.zone)
    microvm = next((b for b in node.backends if b.runtime is Runtime.MICROVM), None)
    accel = microvm.details().get("accel", "") if microvm is not None else ""
    classes = [b.runtime for b in node.backends]

    def offer() -> NodeOffer:
        return measured_offer(node.name, address, region, zone, classes, accel, settings.data_dir)

    publisher = NodePublisher(kube, offer, lease_timing(settings.lease_duration_s), close=kube.aclose)
    publisher.start()
    return publisher


def serve_node(settings: Settings, host: str, port: int, secret: bytes) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    uvicorn.run(
        node_app(settings, secret, address),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        ws_max_size=NODE_RPC_MAX_FRAME_BYTES + 4096,
        timeout_graceful_shutdown=5,
    )
