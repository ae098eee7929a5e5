"""The control plane's side of the node RPC: signed calls and verified answers (``node.wire``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from ..domain.errors import ShellsError, Unavailable
from ..domain.limits import NODE_RPC_MAX_FRAME_BYTES
from .codec import decode, encode
from .tls import over_tls
from .wire import DOWN, UP, Signer, Unauthenticated

CONNECT_TIMEOUT_S = 5.0
LAST_FRAME_S = 1.0
"""How long a stream waits, after an item its caller ends on, for the answer's last frame, which keeps
the session for the next call; past it the session is closed (as a stream left mid-answer is)."""
IDLE_SESSIONS = 32
"""Authenticated sessions a control plane keeps open to each node for the next calls."""


def _body(
    args: tuple[Any, ...], kwargs: dict[str, Any], target: str = "", method: str = "", generation: int = 0
) -> bytes:
    """A call's frame: its arguments (and, in a session, what it calls), with the node's generation
    as the caller knows it (the node refuses an older one: ``node.agent``)."""
    named = [["t", target], ["m", method]] if target else []
    fields = [*named, ["a", encode(list(args))], ["k", encode(kwargs)], ["g", generation]]
    return json.dumps({"$d": fields}, separators=(",", ":")).encode()


class NodeClient:
    """Calls to one node agent at ``url`` (``http://host:port``)."""

    def __init__(self, url: str, signer: Signer) -> None:
        self.url = url.rstrip("/") if signer.tls is None else over_tls(url.rstrip("/"))
        self.signer = signer
        timeout = httpx.Timeout(None, connect=CONNECT_TIMEOUT_S)
        self.blocking = httpx.Client(base_url=self.url, timeout=timeout, verify=signer.tls or True)
        self._idle: list[Duplex] = []
        self.generation = 0
        """The node's registration generation in the record, sent with every call (``fence``)."""

    async def aclose(self) -> None:
        for session in self._idle:
            await session.ws.close()
        self._idle = []
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
        body = _body(args, kwargs, generation=self.generation)
        headers = self.signer.sign("POST", path, body)
        return path, body, headers, headers["x-shells-nonce"]

    def _frame(self, nonce: str, seq: int, line: bytes) -> tuple[str, Any]:
        """The verified frame; an error frame (``x``) is raised as its error."""
        kind, value = self._verified(nonce, seq, line)
        if kind == "x":
            raise value
        return kind, value

    def _verified(self, nonce: str, seq: int, line: bytes) -> tuple[str, Any]:
        if len(line) > NODE_RPC_MAX_FRAME_BYTES:
            raise self._forged("frame too large")
        try:
            doc = json.loads(self.signer.open(DOWN, nonce, seq, line))
            kind, value = str(doc["k"]), decode(doc["v"])
        except Unauthenticated:
            raise self._forged("bad frame signature") from None
        except (ValueError, KeyError, TypeError) as e:
            raise self._forged(f"malformed frame: {e}") from None
        if kind == "x" and not isinstance(value, ShellsError):
            raise self._forged("malformed error")
        return kind, value

    async def stream(
        self,
        target: str,
        method: str,
        *args: Any,
        progress: Callable[[Any], None] | None = None,
        last: Callable[[Any], bool] | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[Any, None]:
        """The items of a call over a pooled session, then its answer as a ``_Result``. A session
        goes back to the pool only after an answer's last frame; one left mid-answer is closed.

        ``last`` names an item that ends the stream (an exec's exit): the answer's last frame, which
        follows it at once, is read before that item is handed on, so a caller that stops there
        (as every exec's does) leaves the session whole for the next call instead of closing it and
        making the next call pay a new connection and handshake."""
        session, reused = await self._checkout()
        finished = False
        try:
            try:
                await session.send_payload(_body(args, kwargs, target, method, self.generation))
            except Unavailable:
                if not reused:
                    raise
                await session.ws.close()  # the node closed an idle session: the call never left
                session, _ = await self._checkout(fresh=True)
                await session.send_payload(_body(args, kwargs, target, method, self.generation))
            while True:
                kind, value = await session.receive(verify_only=True)
                if kind in ("r", "x"):
                    finished = True
                    if kind == "x":
                        raise value
                    yield _Result(value)
                    return
                if kind == "p":
                    if progress is not None:
                        progress(value)
                elif last is not None and last(value):
                    finished = await self._answered(session)
                    yield value
                    return
                else:
                    yield value
        finally:
            if finished and len(self._idle) < IDLE_SESSIONS:
                self._idle.append(session)
            else:
                await session.ws.close()

    async def _answered(self, session: Duplex) -> bool:
        """Whether the answer's last frame (``r``) came next, within ``LAST_FRAME_S``: the session
        is then in step for another call. Anything else (an error, another item, silence, a broken
        frame) leaves it to be closed; the item already received stands."""
        with anyio.move_on_after(LAST_FRAME_S):
            with contextlib.suppress(Unavailable):
                kind, _ = await session.receive(verify_only=True)
                return kind == "r"
        return False

    async def _checkout(self, *, fresh: bool = False) -> tuple[Duplex, bool]:
        """An idle session (and True), else a new one (and False)."""
        if self._idle and not fresh:
            return self._idle.pop(), True
        return await self._connect("/v1/session"), False

    async def _connect(self, path: str) -> Duplex:
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
                ssl=self.signer.tls,
            )
        except InvalidStatus as e:
            raise self._forged(f"the node refused the connection: HTTP {e.response.status_code}") from None
        except (OSError, WebSocketException, TimeoutError) as e:
            raise self._unreachable(e) from None
        return Duplex(self, ws, headers["x-shells-nonce"])

    async def items(
        self, target: str, method: str, *args: Any, last: Callable[[Any], bool] | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        async with aclosing(self.stream(target, method, *args, last=last, **kwargs)) as values:
            async for value in values:
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
        async with aclosing(self.stream(target, method, *args, progress=progress, **kwargs)) as values:
            async for value in values:
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
        """A call that takes input while it runs, on a WebSocket of its own."""
        link = await self._connect(f"/v1/duplex/{target}/{method}")
        try:
            await link.send_payload(_body(args, kwargs, generation=self.generation))
            yield link
        finally:
            await link.ws.close()


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

    async def receive(self, *, verify_only: bool = False) -> tuple[str, Any]:
        """The next frame from the node; an ``x`` frame is raised as its error unless ``verify_only``."""
        try:
            raw = await self.ws.recv(decode=False)
        except WebSocketException as e:
            raise self.client._unreachable(e) from None
        assert isinstance(raw, bytes)
        kind, value = self.client._verified(self.nonce, self.down, raw)
        self.down += 1
        if kind == "x" and not verify_only:
            raise value
        return kind, value
