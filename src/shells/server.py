"""Wire one Shells instance together and serve it."""

from __future__ import annotations

import logging
import socket

import uvicorn
from fastapi import FastAPI

from .api.app import create_app
from .api.drain import Drain
from .control.request_scope import RequestLogFilter
from .control.service import Control
from .runtime.backend import Backend
from .runtime.container.backend import ContainerBackend
from .runtime.microvm.backend import MicrovmBackend
from .runtime.wasm.backend import WasmBackend
from .runtime.wasm.compiler import ContainerCompiler
from .settings import Settings
from .store.repository import Store

WS_MAX_MESSAGE = 1 << 20
"""Largest WebSocket message (terminal input) the server accepts."""
SHUTDOWN_BACKSTOP_S = 5
"""After the drain, how long uvicorn waits for other open answers (downloads, terminals)."""


def build_control(settings: Settings) -> Control:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    container = ContainerBackend(settings)
    wasm = WasmBackend(settings, container.pool, ContainerCompiler(container))
    backends: list[Backend] = [container, wasm]
    missing = MicrovmBackend.available()
    if missing is None:
        backends.append(MicrovmBackend(settings, container))
    else:
        logging.getLogger(__name__).warning("no microvm class on this host: %s", missing)
    return Control(settings, Store(settings.db_url), backends, container.network)


def build_app(settings: Settings) -> FastAPI:
    return create_app(build_control(settings))


def serve(settings: Settings) -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s req=%(request_id)s tenant=%(tenant)s "
        "principal=%(principal)s %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestLogFilter())
    app = build_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        ws_max_size=WS_MAX_MESSAGE,
        timeout_graceful_shutdown=SHUTDOWN_BACKSTOP_S,
    )
    _Server(config, app.state.control, app.state.drain).run()


class _Server(uvicorn.Server):
    """Stops in bounded time. uvicorn stops listening, then waits for every open answer to finish
    before it runs the app's own shutdown: first the live feed's streams are ended (they never end
    by themselves) and the API drains (``api.drain``: 503 to new requests, command streams end after
    the grace); what still runs after that gets SHUTDOWN_BACKSTOP_S, then is cancelled."""

    def __init__(self, config: uvicorn.Config, control: Control, drain: Drain) -> None:
        super().__init__(config)
        self.control = control
        self.drain = drain

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.control.feed.close()
        await self.drain.finish()
        await super().shutdown(sockets)
