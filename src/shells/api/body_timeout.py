"""A request body that stops arriving times out: each piece must come within BODY_IDLE_TIMEOUT_S of
the last, or the request ends 408 ``request_timeout`` (and uvicorn closes the connection, whose
unread rest cannot be parsed). uvicorn has no body timeout of its own, so a body shorter than its
``Content-Length`` held a request, its task and its connection open for ever. Wrapping ``receive``
covers every reader of a body at once: JSON bodies, uploads, the MCP transport."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..domain.errors import RequestTimeout
from ..domain.limits import BODY_IDLE_TIMEOUT_S


class BodyTimeout:
    def __init__(self, app: ASGIApp, idle_s: float = BODY_IDLE_TIMEOUT_S) -> None:
        self.app = app
        self.idle_s = idle_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:  # past the body, receive waits for the client to leave: no limit
                return await receive()
            try:
                async with asyncio.timeout(self.idle_s):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"The request body stopped arriving: nothing for {self.idle_s:.0f} s. "
                    "Send as many bytes as Content-Length says."
                ) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)
