"""The web console's assets: ``/`` is the page, ``/console/*`` its bundle (built by ``make console``
from ``console/`` and committed under ``shells/console``). The page talks to the public API only.

The Content-Security-Policy lets the page load nothing but its own files and talk to nothing but
this server (WebSockets included): an injected string in a shell's name or an event message cannot
become a script. Styles allow inline use because xterm.js sizes its rows with a ``<style>`` element.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(__file__).resolve().parent.parent / "console"
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.api_route("/", methods=["GET", "HEAD"])
async def page() -> FileResponse:
    return FileResponse(ASSETS / "index.html", headers=HEADERS)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/console", StaticFiles(directory=ASSETS), name="console")
