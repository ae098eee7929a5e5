"""The check that an answer's status is one its operation declares in the OpenAPI document.

``declared`` reads a document (the app's own, or a server's ``/openapi.json``); ``DeclaredStatuses``
is an ASGI wrapper for in-process tests that notes every answer whose status the matched route's
operation does not list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send


def declared(doc: dict[str, Any], method: str, path: str) -> set[int]:
    """The statuses the operation ``method path`` (a path template) declares."""
    responses = doc["paths"][path][method.lower()]["responses"]
    return {int(status) for status in responses if status != "default"}


@dataclass
class DeclaredStatuses:
    app: FastAPI
    undeclared: list[str] = field(default_factory=list)
    seen: list[tuple[str, str, int]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._check(scope, int(message["status"]))
            await send(message)

        await self.app(scope, receive, watched)

    def _check(self, scope: Scope, status: int) -> None:
        route = scope.get("route")
        path = getattr(route, "path_format", None)
        if path is None or path not in self.app.openapi()["paths"]:
            return  # no operation matched (an unknown path, the console's pages)
        method = scope["method"]
        self.seen.append((method, path, status))
        if status not in declared(self.app.openapi(), method, path):
            self.undeclared.append(f"{method} {path} answered {status}")
