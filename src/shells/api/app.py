"""The FastAPI application: builds the control plane at start-up and mounts the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from ..control.service import Control
from . import errors
from .routes import router


def create_app(control: Control) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await control.start()
        try:
            yield
        finally:
            await control.close()

    app = FastAPI(title="Shells", version=__version__, lifespan=lifespan)
    app.state.control = control
    errors.install(app)
    app.include_router(router)
    return app
