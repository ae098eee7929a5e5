"""One ``httpx.AsyncClient`` with the SDK's rules: auth, request ids, retries and error mapping."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypedDict, TypeVar, Unpack

import anyio
import httpx

from ..connection import CONNECT_TIMEOUT_S, DEFAULT_DOOR, DOOR_HEADER, USER_AGENT, new_request_id, resolve
from ..errors import REQUEST_ID_HEADER, error_from_response, error_from_transport, error_from_wire
from ..retry import RATE_LIMITED, RetryPolicy, retry_after

T = TypeVar("T")
Json = dict[str, Any]
Params = Mapping[str, str | int | float | bool]
Content = bytes | Callable[[], AsyncIterator[bytes]]
"""A request body: bytes, or a function that opens a fresh stream of chunks for every attempt."""


class Options(TypedDict, total=False):
    """What a call carries besides its method and path."""

    params: Params
    body: Json
    """Sent as JSON."""
    content: Content
    """Sent as it is."""
    unbounded: bool
    """No read timeout: commands and builds run as long as their own timeout says."""


class AsyncHTTP:
    def __init__(
        self,
        base_url: str | None,
        token: str | None,
        *,
        timeout: float,
        retry: RetryPolicy,
        transport: httpx.AsyncBaseTransport | None,
        headers: Mapping[str, str] | None,
    ) -> None:
        self.base_url, token = resolve(base_url, token)
        self.retry = retry
        self._timeout = httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S)
        self._unbounded = httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S, read=None)
        sent = httpx.Headers({"User-Agent": USER_AGENT, DOOR_HEADER: DEFAULT_DOOR})
        sent.update(headers or {})  # case-insensitive: the caller's own door replaces ours
        sent["Authorization"] = f"Bearer {token}"
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=sent,
            timeout=self._timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(
        self, method: str, path: str, *, stream: bool = False, **options: Unpack[Options]
    ) -> httpx.Response:
        """Send one call and return its successful answer, retrying only what ``RetryPolicy`` allows.

        Raises:
            ShellsError: the subclass named by the server's error code, or ``Unavailable`` /
                ``Timeout`` when no answer came.
        """
        request_id = new_request_id()
        retry = 0
        while True:
            wait = 0.0
            content = options.get("content")
            request = self._client.build_request(
                method,
                path,
                params=options.get("params"),
                json=options.get("body"),
                content=content() if callable(content) else content,
                headers={REQUEST_ID_HEADER: request_id},
                timeout=self._unbounded if options.get("unbounded") else self._timeout,
            )
            try:
                response = await self._client.send(request, stream=stream)
            except httpx.TransportError as exc:
                if not self.retry.allows(method, retry, error=exc):
                    raise error_from_transport(exc, str(request.url), request_id) from exc
            else:
                if response.is_success:
                    return response
                if not self.retry.allows(method, retry, status=response.status_code):
                    await response.aread()
                    raise error_from_response(response)
                if response.status_code == RATE_LIMITED:
                    await response.aread()
                    wait = retry_after(response)
                await response.aclose()
            await anyio.sleep(max(wait, self.retry.delay(retry)))
            retry += 1

    async def call(self, method: str, path: str, **options: Unpack[Options]) -> Any:
        """Send one call and decode its JSON answer (``None`` when it has no body)."""
        response = await self.send(method, path, **options)
        return response.json() if response.content else None

    @asynccontextmanager
    async def stream(
        self, method: str, path: str, **options: Unpack[Options]
    ) -> AsyncIterator[httpx.Response]:
        """Send one call and hand over its answer unread; a connection lost while reading it
        becomes ``Unavailable``."""
        response = await self.send(method, path, stream=True, **options)
        try:
            yield response
        except httpx.TransportError as exc:
            request = response.request
            raise error_from_transport(exc, str(request.url), request.headers[REQUEST_ID_HEADER]) from exc
        finally:
            await response.aclose()

    @asynccontextmanager
    async def ndjson(
        self,
        method: str,
        path: str,
        parsers: Mapping[str, Callable[[Json], T]],
        *,
        body: Json | None = None,
        content: Content | None = None,
        params: Params | None = None,
    ) -> AsyncIterator[AsyncIterator[T]]:
        """Send one call (a JSON ``body``, or raw ``content``) whose answer is a stream of JSON lines
        and hand over each line parsed by ``parsers[line["type"]]``; lines of a type this SDK does not
        know are skipped."""
        options: Options = {"unbounded": True}
        if content is not None:
            options["content"] = content
        elif body is not None:
            options["body"] = body
        if params is not None:
            options["params"] = params
        async with self.stream(method, path, **options) as response:
            yield _events(response, parsers)


async def _events(response: httpx.Response, parsers: Mapping[str, Callable[[Json], T]]) -> AsyncIterator[T]:
    """The parsed lines of an NDJSON answer; an ``{"type": "error"}`` line raises its exception."""
    async for line in response.aiter_lines():
        if not line:
            continue
        item = json.loads(line)
        kind = item.get("type")
        if kind == "error":
            raise error_from_wire(response.status_code, item, response.headers.get(REQUEST_ID_HEADER))
        if kind in parsers:
            yield parsers[kind](item)
