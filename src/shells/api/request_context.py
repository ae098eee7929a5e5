"""Per-request context for REST and WebSocket: a request id (``X-Request-Id``, kept when sane, made up
otherwise, and echoed on every answer), the door the caller came through (``X-Shells-Door``: cli, sdk,
mcp, console; rest when absent), and the audit record of requests nothing else recorded.

A plain ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: it adds no task and no body
copy to a request, which matters on the exec path.
"""

from __future__ import annotations

from typing import cast

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from ..control.request_scope import begin_request
from ..control.service import Control
from ..domain.audit import parse_door, request_id_from
from ..domain.errors import InvalidRequest
from .errors import error_body

TARGET_PARAMS = ("shell_id", "token_id", "credential_id", "name")
"""Path parameters that name what a request is about, most specific first."""
READ_METHODS = frozenset({"GET", "HEAD"})


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = request_id_from(headers.get("x-request-id"))
        try:
            door = parse_door(headers.get("x-shells-door"))
        except InvalidRequest as exc:
            body = error_body(exc.code, exc.message, exc.details)
            if scope["type"] == "http":
                await JSONResponse(body, 400, headers={"x-request-id": request_id})(scope, receive, send)
            else:
                await WebSocketClose(4400, exc.message)(scope, receive, send)
            return
        info = begin_request(request_id, door)
        echo = (b"x-request-id", request_id.encode())
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]
                message["headers"] = [*message.get("headers", []), echo]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            if route is not None:
                params = scope.get("path_params", {})
                control = cast(Control, scope["app"].state.control)
                control.audit.finish(
                    info,
                    action=str(getattr(route, "name", "request")),
                    target=next((str(params[p]) for p in TARGET_PARAMS if p in params), None),
                    read=scope["type"] == "http" and scope["method"] in READ_METHODS,
                    status=status or (500 if scope["type"] == "http" else 0),
                )
