"""The FastAPI application: builds the control plane at start-up and mounts the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from ..control.service import Control
from ..mcp.http import McpHttp
from . import console, errors, metrics, openapi_doc, routes_admin, routes_mcp, terminal_ws
from .body_timeout import BodyTimeout
from .drain import Drain, Draining
from .exec_fast import FastExec
from .request_context import RequestContext
from .routes import router
from .routes_bucket_credentials import router as bucket_credentials_router
from .routes_events import router as events_router
from .routes_images import router as images_router
from .routes_metering import router as metering_router
from .routes_network import router as network_router
from .routes_nodes import router as nodes_router
from .routes_processes import router as processes_router
from .routes_relocate import router as relocate_router
from .routes_run import router as run_router
from .routes_samples import router as samples_router
from .routes_secrets import router as secrets_router
from .routes_snapshots import router as snapshots_router
from .routes_storage import router as storage_router
from .routes_templates import router as templates_router
from .routes_ttl import router as ttl_router
from .routes_webhooks import router as webhooks_router


def create_app(control: Control) -> FastAPI:
    mcp = McpHttp(control)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await control.start()
        try:
            async with mcp.running():
                yield
        finally:
            await control.close()

    app = FastAPI(
        title="Shells",
        version=__version__,
        lifespan=lifespan,
        generate_unique_id_function=openapi_doc.operation_id,
    )
    app.state.control = control
    app.state.mcp = mcp
    app.state.drain = drain = Drain(control.ctx.settings.shutdown_grace_s)
    app.add_middleware(FastExec)  # first, so innermost: every middleware below wraps it too
    app.add_middleware(Draining, drain=drain)
    app.add_middleware(BodyTimeout)
    app.add_middleware(RequestContext)
    metrics.install(app, control)
    errors.install(app)  # last, so outermost: nothing raised below it reaches uvicorn
    app.include_router(router)
    app.include_router(routes_admin.router)
    app.include_router(terminal_ws.router)
    app.include_router(images_router)
    app.include_router(templates_router)
    app.include_router(run_router)
    app.include_router(network_router)
    app.include_router(secrets_router)
    app.include_router(bucket_credentials_router)
    app.include_router(nodes_router)
    app.include_router(storage_router)
    app.include_router(ttl_router)
    app.include_router(processes_router)
    app.include_router(metering_router)
    app.include_router(routes_mcp.router)
    app.include_router(events_router)
    app.include_router(webhooks_router)
    app.include_router(samples_router)
    app.include_router(snapshots_router)
    app.include_router(relocate_router)
    console.install(app)
    openapi_doc.install(app)
    return app
