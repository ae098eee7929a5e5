"""Stopping in bounded time: once SIGTERM arrives new requests answer 503 ``shutting_down`` (the API
keeps listening rather than refusing connections), open command streams get a grace period to end
on their own, and those still running then end with a final ``shutting_down`` event.

uvicorn alone stops listening first and then waits for every open answer without limit, so one
endless stream (``tail -f``) kept a server from ever stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import TypeVar

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from ..domain.errors import ShuttingDown
from .errors import error_response

T = TypeVar("T")
FINAL_EVENT_S = 2.0
"""How long streams ended by the drain get to send their final event before uvicorn takes over."""
RETRY_AFTER_S = 5
WS_SERVICE_RESTART = 1012


def shutting_down() -> ShuttingDown:
    return ShuttingDown(
        "The server is shutting down; send the request again in a few seconds.",
        {"retry_after_s": RETRY_AFTER_S},
    )


class Drain:
    """The shutdown state every request and command stream of one app consults."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.draining = False
        self._ending: asyncio.Future[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._open = 0

    async def finish(self) -> None:
        """Refuse new requests, give open streams ``grace_s``, then end the rest and let their
        final events go out."""
        self.draining = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.grace_s):
                await self._idle.wait()
        if not self.ending.done():
            self.ending.set_result(None)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FINAL_EVENT_S):
                await self._idle.wait()

    @property
    def ending(self) -> asyncio.Future[None]:
        """Done once the grace is over; one future every stream waits on (made in the loop)."""
        if self._ending is None:
            self._ending = asyncio.get_running_loop().create_future()
        return self._ending

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        self._open += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._open -= 1
            if not self._open:
                self._idle.set()

    async def run(self, work: Awaitable[T]) -> T:
        """``work`` to its end, or ShuttingDown once the grace is over (``work`` is cancelled)."""
        with self._held():
            task = asyncio.ensure_future(work)
            try:
                await asyncio.wait((task, self.ending), return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not task.done():
                    task.cancel()
                    await _ended(task)
            if task.cancelled():
                raise shutting_down()
            return task.result()

    async def stream(self, items: AsyncIterator[T]) -> AsyncIterator[T]:
        """``items`` until they end, or until the grace is over: then ``items`` is cancelled where it
        waits (a command is killed by closing its channel) and ShuttingDown is raised."""
        with self._held():
            step: asyncio.Future[T] | None = None
            try:
                while True:
                    step = asyncio.ensure_future(anext(items))
                    await asyncio.wait((step, self.ending), return_when=asyncio.FIRST_COMPLETED)
                    if not step.done():
                        raise shutting_down()
                    try:
                        item = step.result()
                    except StopAsyncIteration:
                        return
                    step = None
                    yield item
            finally:
                if step is not None and not step.done():  # ended by the drain, or the caller left
                    step.cancel()
                    await _ended(step)


async def _ended(task: asyncio.Future[T]) -> None:
    """Wait for a cancelled ``task`` to finish, shielded: the caller's own cancellation (a client
    that left: anyio cancels again at every await) must not cut the wait short, or the caller would
    close the command's stream while that task still runs inside it."""
    with anyio.CancelScope(shield=True):
        await asyncio.wait((task,))
    if not task.cancelled():
        task.exception()  # retrieved: what a task cancelled too late ended with is the caller's to read


class Draining:
    """The ASGI middleware that answers 503 ``shutting_down`` (with Retry-After) once draining."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.drain.draining or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            response = error_response(shutting_down())
            response.headers["connection"] = "close"
            await response(scope, receive, send)
        else:
            await WebSocketClose(WS_SERVICE_RESTART, "the server is shutting down")(scope, receive, send)
