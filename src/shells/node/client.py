"""The control plane's side of the node RPC: signed calls and verified answers (``node.wire``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from ..domain.errors import ShellsError, Unavailable
from ..domain.limits import NODE_RPC_MAX_FRAME_BYTES
from .codec import decode, encode
from .wire import DOWN, UP, Signer, Unauthenticated

CONNECT_TIMEOUT_S = 5.0


def _body(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    return json.dumps(
        {"$d": [["a", encode(list(args))], ["k", encode(kwargs)]]}, separators=(",", ":")
    ).encode()


class NodeClient:
    """Calls to one node agent at ``url`` (``http://host:port``)."""

    def __init__(self, url: str, signer: Signer) -> None:
        self.url = url.rstrip("/")
        self.signer = signer
        timeout = httpx.Timeout(None, connect=CONNECT_TIMEOUT_S)
        limits = httpx.Limits(max_keepalive_connections=32)
        self.http = httpx.AsyncClient(base_url=self.url, timeout=timeout, limits=limits)
        self.blocking = httpx.Client(base_url=self.url, timeout=timeout)

    async def aclose(self) -> None:
        await self.http.aclose()
        self.blocking.close()

    def _unreachable(self, e: Exception) -> Unavailable:
        return Unavailable(f"The node at {self.url} does not answer ({type(e).__name__}); retry shortly.")

    def _forged(self, why: str) -> Unavailable:
        return Unavailable(
            f"The node at {self.url} gave an answer that does not authenticate ({why}); check that it "
            "and the control plane share one cluster secret."
        )

    def _request(
        self, target: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str, bytes, dict[str, str], str]:
        path = f"/v1/call/{target}/{method}"
        body = _body(args, kwargs)
        headers = self.signer.sign("POST", path, body)
        return path, body, headers, headers["x-shells-nonce"]

    def _frame(self, nonce: str, seq: int, line: bytes) -> tuple[str, Any]:
        if len(line) > NODE_RPC_MAX_FRAME_BYTES:
            raise self._forged("frame too large")
        try:
            doc = json.loads(self.signer.open(DOWN, nonce, seq, line))
            kind, value = str(doc["k"]), decode(doc["v"])
        except Unauthenticated:
            raise self._forged("bad frame signature") from None
        except (ValueError, KeyError, TypeError) as e:
            raise self._forged(f"malformed frame: {e}") from None
        if kind == "x":
            if not isinstance(value, ShellsError):
                raise self._forged("malformed error")
            raise value
        return kind, value

    async def stream(
        self,
        target: str,
        method: str,
        *args: Any,
        progress: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        """The items of a streamed call, then (as its value) nothing more: ends on its last frame."""
        path, body, headers, nonce = self._request(target, method, args, kwargs)
        try:
            async with self.http.stream("POST", path, content=body, headers=headers) as answer:
                if answer.status_code != 200:
                    raise self._forged(f"HTTP {answer.status_code}")
                seq = 0
                async for line in answer.aiter_lines():
                    kind, value = self._frame(nonce, seq, line.encode())
                    seq += 1
                    if kind == "r":
                        yield _Result(value)
                        return
                    if kind == "p":
                        if progress is not None:
                            progress(value)
                    else:
                        yield value
        except httpx.TransportError as e:
            raise self._unreachable(e) from None
        raise self._forged("the answer ended before its last frame")

    async def items(self, target: str, method: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for value in self.stream(target, method, *args, **kwargs):
            if isinstance(value, _Result):
                return
            yield value

    async def call(
        self,
        target: str,
        method: str,
        *args: Any,
        progress: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        async for value in self.stream(target, method, *args, progress=progress, **kwargs):
            if isinstance(value, _Result):
                return value.value
        raise self._forged("no answer")  # pragma: no cover - stream() raises first

    def call_blocking(self, target: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """A plain call from synchronous code (the ``InstanceNetwork`` contract is synchronous)."""
        path, body, headers, nonce = self._request(target, method, args, kwargs)
        try:
            answer = self.blocking.post(path, content=body, headers=headers)
        except httpx.TransportError as e:
            raise self._unreachable(e) from None
        if answer.status_code != 200:
            raise self._forged(f"HTTP {answer.status_code}")
        lines = answer.content.splitlines()
        for seq, line in enumerate(lines):
            kind, value = self._frame(nonce, seq, line)
            if kind == "r":
                return value
        raise self._forged("the answer ended before its last frame")

    @asynccontextmanager
    async def duplex(self, target: str, method: str, *args: Any, **kwargs: Any) -> AsyncIterator[Duplex]:
        """A call that takes input while it runs, over a WebSocket."""
        path = f"/v1/duplex/{target}/{method}"
        headers = self.signer.sign("GET", path, b"")
        parts = urlsplit(self.url)
        url = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}{path}"
        try:
            ws = await connect(
                url,
                additional_headers=headers,
                max_size=NODE_RPC_MAX_FRAME_BYTES,
                open_timeout=CONNECT_TIMEOUT_S,
                compression=None,
            )
        except (OSError, WebSocketException, TimeoutError) as e:
            raise self._unreachable(e) from None
        link = Duplex(self, ws, headers["x-shells-nonce"])
        try:
            await link.send_payload(_body(args, kwargs))
            yield link
        finally:
            await ws.close()


class _Result:
    """The last frame's value, told apart from a streamed item."""

    def __init__(self, value: Any) -> None:
        self.value = value


class Duplex:
    def __init__(self, client: NodeClient, ws: ClientConnection, nonce: str) -> None:
        self.client = client
        self.ws = ws
        self.nonce = nonce
        self.up = 0
        self.down = 0
        self.lock = anyio.Lock()

    async def send(self, kind: str, value: Any) -> None:
        await self.send_payload(json.dumps({"k": kind, "v": encode(value)}, separators=(",", ":")).encode())

    async def send_payload(self, payload: bytes) -> None:
        async with self.lock:
            frame = self.client.signer.frame(UP, self.nonce, self.up, payload)
            self.up += 1
            try:
                await self.ws.send(frame)
            except WebSocketException as e:
                raise self.client._unreachable(e) from None

    async def receive(self) -> tuple[str, Any]:
        """The next frame from the node (an ``x`` frame is raised as its error)."""
        try:
            raw = await self.ws.recv(decode=False)
        except WebSocketException as e:
            raise self.client._unreachable(e) from None
        assert isinstance(raw, bytes)
        kind, value = self.client._frame(self.nonce, self.down, raw)
        self.down += 1
        return kind, value
