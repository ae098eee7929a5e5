"""One Shells instance in the test's own process, on the fake node: ``create_app(Control(...))``
served through ``httpx.ASGITransport``, its lifespan (start-up, reconciliation, background loops,
shutdown) run as a server runs it. No root, no ports, no subprocess server."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import uvicorn
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI

from shells.api.app import create_app
from shells.control.service import Control
from shells.node import Node
from shells.sdk import AsyncShells, Shells
from shells.server import build_control
from shells.settings import Settings
from shells.store.repository import Store

from .fake_node import FakeNode, NullNetwork
from .waiting import wait_until

BASE_URL = "http://127.0.0.1"
"""Loopback, which the MCP transport's Host check accepts as this server."""


@dataclass
class Instance:
    """A running in-process server: its app, control plane, node and admin token."""

    app: FastAPI
    control: Control
    node: FakeNode
    token: str

    def http(self, token: str | None = None) -> httpx.AsyncClient:
        """Plain HTTP to the app (for the REST contract itself)."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url=BASE_URL,
            headers={"Authorization": f"Bearer {token or self.token}"},
        )

    def client(self, token: str | None = None) -> AsyncShells:
        return AsyncShells(BASE_URL, token or self.token, transport=httpx.ASGITransport(app=self.app))


def build(root: Path, through: Callable[[FakeNode], Node] | None = None, /, **settings: object) -> Instance:
    """An instance whose data lives under ``root`` (not started); ``settings`` override the test
    defaults. Its token is read once it has started (``Instance.token`` is empty until then).
    ``through``: the control plane reaches the fake node as that node (a remote one over the RPC)."""
    config = instance_settings(root, **settings)
    node = FakeNode(root / "node")
    if through is None:
        control = Control(config, Store(config.db_url), [node], NullNetwork())
    else:
        seen = through(node)
        control = Control(config, Store(config.db_url), seen.backends, seen.network, dataplane=seen.local)
    return Instance(create_app(control), control, node, "")


def instance_settings(root: Path, **settings: object) -> Settings:
    """The settings of an in-process instance under ``root``: the test defaults, then ``settings``."""
    config = Settings(
        data_dir=root / "data",
        cache_dir=root / "cache",
        warm_pool_size=0,
        ingress_port=None,
        idle_timeout_s=0,
        budget_check_s=3600.0,
    )
    config = replace(config, **settings)  # type: ignore[arg-type]
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return config


def _admin_token(instance: Instance) -> str:
    return instance.control.ctx.settings.admin_token_path.read_text(encoding="utf-8").strip()


@asynccontextmanager
async def serving(
    root: Path, through: Callable[[FakeNode], Node] | None = None, **settings: object
) -> AsyncIterator[Instance]:
    """An instance whose data lives under ``root``, started and stopped as a server does."""
    instance = build(root, through, **settings)
    async with instance.app.router.lifespan_context(instance.app):
        instance.token = _admin_token(instance)
        yield instance


@asynccontextmanager
async def serving_control(root: Path, first: FakeNode, **settings: object) -> AsyncIterator[Instance]:
    """A control role in-process (``settings`` name its node agents, ``nodes``), wired as
    ``shells serve --role control`` wires it; ``first`` is the fake behind its first node."""
    control = build_control(instance_settings(root, **settings))
    instance = Instance(create_app(control), control, first, "")
    async with instance.app.router.lifespan_context(instance.app):
        instance.token = _admin_token(instance)
        yield instance


@contextmanager
def serving_http(root: Path, **settings: object) -> Iterator[tuple[str, Instance]]:
    """The instance behind a real HTTP listener on loopback (uvicorn in a thread), for a browser;
    yields its base URL."""
    instance = build(root, **settings)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(instance.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="in-process server")
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), 30, "the in-process server's start")
        assert server.started, "the in-process server did not start"
        instance.token = _admin_token(instance)
        yield f"http://127.0.0.1:{port}", instance
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class PortalTransport(httpx.BaseTransport):
    """A blocking transport into an ASGI app that runs on a portal's event loop, so the sync SDK
    (and the CLI on it) reach the same in-process instance as the async one."""

    def __init__(self, app: FastAPI, portal: BlockingPortal) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._portal = portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def call() -> tuple[int, httpx.Headers, bytes]:
            sent = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            answer = await self._inner.handle_async_request(sent)
            return answer.status_code, answer.headers, await answer.aread()

        status, headers, content = self._portal.call(call)
        return httpx.Response(status, headers=headers, content=content, request=request)


@dataclass
class BlockingInstance:
    """``serving`` for synchronous code: the instance runs on a portal's event loop thread."""

    instance: Instance
    portal: BlockingPortal

    def client(self, token: str | None = None, door: str | None = None) -> Shells:
        headers = {"X-Shells-Door": door} if door else None
        transport = PortalTransport(self.instance.app, self.portal)
        return Shells(BASE_URL, token or self.instance.token, transport=transport, headers=headers)


@contextmanager
def serving_blocking(root: Path) -> Iterator[BlockingInstance]:
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(serving(root)) as instance:
        yield BlockingInstance(instance, portal)
