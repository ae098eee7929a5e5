"""Every HTTP answer carries an ``X-Request-Id``: the caller's own when it sent a sane one, else a new one.

The id is also put in the request scope's state (``request.state.request_id``) so that logs and audit
events can name it. This is a plain ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``,
which would buffer streamed answers (exec output, file downloads) and cost a task per request.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._-]{1,64}")


def incoming_request_id(scope: Scope) -> str | None:
    """The caller's ``X-Request-Id``, if it is 1-64 letters, digits, '.', '_' or '-'."""
    for name, value in scope.get("headers", ()):
        if name == HEADER:
            return value.decode("ascii") if _SANE.fullmatch(value) else None
    return None


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        header = (HEADER, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
