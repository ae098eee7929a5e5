"""Wire one Shells instance together and serve it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import httpx
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from .api.app import create_app
from .api.drain import Drain
from .cluster.kube import Kube, KubeConfig, KubeError
from .cluster.membership import Membership
from .control.leadership import kube_config
from .control.node_registry import NodeRegistry
from .control.request_scope import RequestLogFilter
from .control.service import Control
from .domain.errors import InvalidRequest, Unavailable
from .domain.nodes import NodeOffer
from .node import Node
from .node.local import local_node
from .node.remote import connect_node
from .node.routed import Fleet, Routes
from .node.tls import node_tls
from .node.wire import Signer, load_secret
from .settings import Settings
from .store.repository import Store

if TYPE_CHECKING:
    from .e2b.app import E2bDoor

WS_MAX_MESSAGE = 1 << 20
"""Largest WebSocket message (terminal input) the server accepts."""
ROUTES_CACHED = 65536
"""Shells whose node a control plane remembers (looked up in the record again when forgotten)."""
ROUTE_KEPT_S = 5.0
"""How long a shell's node is remembered before the record is read again (a shell moved by another
control replica is reached at its new node after at most this long)."""
SHUTDOWN_BACKSTOP_S = 5
"""After the drain, how long uvicorn waits for other open answers (downloads, terminals)."""


def build_control(settings: Settings, node: Node | None = None) -> Control:
    """The control plane over ``node`` (default: this machine's own, in-process; with
    ``settings.nodes``, the node agents there, each shell's calls going to its node)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.db_url)
    registry = None
    if node is None and (settings.nodes or settings.discover_nodes):
        registry = remote_nodes(settings, store)
        node = registry.fleet.node
    node = node or local_node(settings)
    return Control(
        settings,
        store,
        node.backends,
        node.network,
        node.volumes,
        dataplane=node.local,
        carrier=node.carrier,
        fleet=node.fleet,
        registry=registry,
    )


def remote_nodes(settings: Settings, store: Store) -> NodeRegistry:
    """The control role's nodes: the ``--node`` agents, and with ``discover_nodes`` those whose
    Kubernetes Leases are live now (more are connected as they appear: ``control.node_registry``),
    reached with the cluster secret and routed by the record: each shell's node is remembered for
    ``ROUTE_KEPT_S`` (a move on this replica forgets it at once through ``Routes.forget``; another
    replica's move is seen within that time)."""
    assert settings.cluster_secret_file is not None
    signer = Signer(load_secret(settings.cluster_secret_file))
    tls = node_tls(settings)
    signer.tls = tls.client_context() if tls is not None else None
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per node call otherwise

    known: dict[str, tuple[str, float]] = {}

    def node_of(host_id: str) -> str | None:
        now = time.monotonic()
        if host_id not in known or now - known[host_id][1] > ROUTE_KEPT_S:
            shell = store.get_shell(host_id)
            if shell is None:
                return None
            if len(known) >= ROUTES_CACHED:
                known.clear()
            known[host_id] = (shell.node, now)
        return known[host_id][0]

    def snapshot_node(snapshot_id: str) -> str | None:
        snap = store.get_snapshot(snapshot_id)
        return node_of(snap.shell_id) if snap is not None else None

    nodes = [connect_node(url, signer) for url in settings.nodes]
    urls = {n.name: (url, True) for n, url in zip(nodes, settings.nodes, strict=True)}
    config = kube_config(settings) if settings.discover_nodes else None
    membership = None
    if config is not None:
        for offer in asyncio.run(first_offers(config, settings.lease_duration_s, bool(nodes))):
            if offer.name not in urls:
                url = f"http://{offer.address}"
                with contextlib.suppress(Unavailable):  # it comes in at the fleet's next look
                    nodes.append(connect_node(url, signer))
                    urls[offer.name] = (url, False)
        if not nodes:
            raise Unavailable("No node agent holds a live Lease (SHELLS_KUBE_URL) nor answers at --node.")
        membership = Membership(Kube(config))

    def forget(host_id: str) -> None:
        known.pop(host_id, None)

    fleet = Fleet(nodes, Routes(node_of, snapshot_node, forget))
    return NodeRegistry(settings, store, signer, fleet, urls, membership)


async def first_offers(config: KubeConfig, lease_s: float, have_static: bool) -> list[NodeOffer]:
    """The nodes whose Leases are live at start-up; without ``--node`` agents, waits (up to two
    leases, at least 30 s) for the first one to appear."""
    kube = Kube(config)
    deadline = time.monotonic() + max(30.0, 2 * lease_s)
    try:
        while True:
            with contextlib.suppress(KubeError, httpx.HTTPError):
                live = [o for o in await Membership(kube).refresh() if o.address]
                if live or have_static:
                    return live
            if have_static or time.monotonic() > deadline:
                return []
            await asyncio.sleep(1.0)
    finally:
        await kube.aclose()


def build_app(settings: Settings) -> FastAPI:
    return create_app(build_control(settings))


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def choose_ingress_port(settings: Settings) -> int:
    """The ingress proxy's port: the one set (refused with a sentence naming the setting when it is
    taken), else the API port + 1 when free (8081 beside the default 8080), else any free port."""
    host, wanted = settings.ingress_host, settings.ingress_port
    if wanted is not None:
        if not _bindable(host, wanted):
            raise InvalidRequest(
                f"The ingress port {host}:{wanted} (SHELLS_INGRESS_PORT) is in use, perhaps by another "
                "Shells instance; set SHELLS_INGRESS_PORT to a free port, or leave it unset to pick one."
            )
        return wanted
    if settings.port + 1 < 65536 and _bindable(host, settings.port + 1):
        return settings.port + 1
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


def serve(settings: Settings) -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s req=%(request_id)s tenant=%(tenant)s "
        "principal=%(principal)s %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestLogFilter())
    if not _bindable(settings.host, settings.port):
        raise InvalidRequest(
            f"The API port {settings.host}:{settings.port} (--port, SHELLS_PORT) is in use, perhaps by "
            "another Shells instance; choose another port."
        )
    door_tls = _door_tls(settings)  # a wrong domain-mode setting is refused before anything starts
    settings = replace(settings, ingress_port=choose_ingress_port(settings))
    log = logging.getLogger(__name__)
    log.info("exposed ports answer on %s:%d", settings.ingress_host, settings.ingress_port)
    app = build_app(settings)
    control: Control = app.state.control
    door = None
    served: ASGIApp = app
    sockets: list[socket.socket] | None = None
    if settings.e2b_port:
        from .e2b.app import E2bDoor

        door = E2bDoor(control)
        served = ByPort(app, {settings.e2b_port: door})
        sockets = [_bind(settings.host, settings.port), _bind(settings.host, settings.e2b_port)]
    config = uvicorn.Config(
        served,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        ws_max_size=WS_MAX_MESSAGE,
        timeout_graceful_shutdown=SHUTDOWN_BACKSTOP_S,
    )
    _Server(config, control, app.state.drain, door, door_tls).run(sockets=sockets)


def _door_tls(settings: Settings) -> ssl.SSLContext | None:
    """The E2B door's TLS in domain mode (``e2b.domain``), None otherwise."""
    if not settings.e2b_domain:
        return None
    from .e2b.domain import door_tls

    return door_tls(settings)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class ByPort:
    """One server, several listeners: a request goes to the app of the port it arrived on (the E2B
    door has its own), anything else and the lifespan to the main app."""

    def __init__(self, main: ASGIApp, by_port: dict[int, ASGIApp]) -> None:
        self.main = main
        self.by_port = by_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        app = self.by_port.get(server[1], self.main) if scope["type"] != "lifespan" and server else self.main
        await app(scope, receive, send)


class _Server(uvicorn.Server):
    """Stops in bounded time. uvicorn stops listening, then waits for every open answer to finish
    before it runs the app's own shutdown: first the live feed's streams are ended (they never end
    by themselves) and the API drains (``api.drain``: 503 to new requests, command streams end after
    the grace); what still runs after that gets SHUTDOWN_BACKSTOP_S, then is cancelled."""

    def __init__(
        self,
        config: uvicorn.Config,
        control: Control,
        drain: Drain,
        door: E2bDoor | None,
        door_tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(config)
        self.control = control
        self.drain = drain
        self.door = door
        self.door_tls = door_tls

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """The E2B door's listener (the last socket) speaks TLS in domain mode, the others not:
        uvicorn takes one TLS setting for all, so the door's listener is added here with its own."""
        if self.door_tls is None or not sockets:
            await super().startup(sockets)
            return
        *plain, door_socket = sockets
        await super().startup(plain)
        config = self.config

        def protocol() -> asyncio.Protocol:
            made: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )
            return made

        listener = await asyncio.get_running_loop().create_server(
            protocol, sock=door_socket, ssl=self.door_tls, backlog=config.backlog
        )
        self.servers.append(listener)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.control.feed.close()
        await self.drain.finish()
        if self.door is not None:
            await self.door.close()
        await super().shutdown(sockets)
