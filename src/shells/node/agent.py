"""``shells node``: one machine's backends and network served to the control plane.

``POST /v1/call/<target>/<method>`` runs one call and answers it as signed frames (one for a plain
call, one per item for a stream); ``/v1/duplex/<target>/<method>`` is a WebSocket for the calls
that take input while they run. ``target`` is ``node``, ``network``, ``durable`` (``node.carrier``)
or an isolation class. Every request must carry a valid signature (``node.wire``); nothing is read
or run before that check.

Fencing: every call carries the node's registration generation as its caller knows it (``g``). The
control plane raises it (``node/fence``) when it registers the node again after declaring it gone;
from then on the node refuses every call of an older generation (``unavailable``), so a control
replica that still acts on the old registration cannot change a shell the record gave up. The
generation is kept in ``generation_file`` across restarts of the agent."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..domain.errors import (
    ActionNotSupported,
    FeatureUnavailable,
    InvalidRequest,
    ObjectStoreUnavailable,
    RuntimeFailure,
    ShellsError,
    Unavailable,
)
from ..domain.execution import ExecSpec
from ..domain.ids import looks_like
from ..domain.isolation import Runtime
from ..domain.limits import NODE_RPC_MAX_FRAME_BYTES
from ..domain.nodes import NodeOffer
from ..domain.samples import ResourceUsage
from ..domain.secrets import Brokered
from ..domain.templates import BuildEvent
from ..objects.store import ObjectStoreError
from ..runtime.backend import Backend
from ..runtime.network.shell_dns import RefusalLog
from . import Node
from .calls import BACKEND_CALLS, BACKEND_DUPLEX, BACKEND_STREAMS, BACKEND_SYNC, NETWORK_CALLS, NODE_CALLS
from .carrier import CARRIER_CALLS
from .codec import decode, encode
from .egress import NodeEgress, SecretUse
from .ingress import NodeIngress, PortEntry, PortsReport
from .volume_copies import VOLUME_CALLS
from .wire import DOWN, UP, Overloaded, Signer, Unauthenticated

log = logging.getLogger(__name__)

PROGRESS_BUFFER = 1024
"""Build progress events waiting to be sent; more are dropped (progress is advisory, the build is not
slowed by a slow reader)."""

Item = tuple[str, Any]
"""One frame's kind and value: ``i`` an item of a stream, ``p`` build progress, ``r`` the answer
(last), ``x`` an error (last)."""


class NodeAgent:
    def __init__(
        self,
        node: Node,
        signer: Signer,
        refusals: RefusalLog | None = None,
        generation_file: Path | None = None,
        offer: Callable[[], NodeOffer] | None = None,
        ingress: NodeIngress | None = None,
        egress: NodeEgress | None = None,
    ) -> None:
        self.node = node
        self.ingress = ingress
        """The node's ingress proxy (``node.ingress``); None: this node serves no exposed ports."""
        self.egress = egress
        """The node's egress proxy (``node.egress``); None: this node brokers no secrets."""
        self.signer = signer
        self.offer = offer
        """What this node offers placement, measured when asked (the ``offer`` call); None: none."""
        self.generation_file = generation_file
        self.generation = 0
        """The newest registration generation the control plane gave this node (``fence``)."""
        if generation_file is not None and generation_file.exists():
            self.generation = int(generation_file.read_text(encoding="ascii").strip() or 0)
        self.refusals = refusals or RefusalLog()
        """DNS questions the node's resolver refused; drained with the network's drop counters."""
        self.backends: dict[Runtime, Backend] = {b.runtime: b for b in node.backends}

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/call/{target}/{method}", self._call, methods=["POST"]),
                WebSocketRoute("/v1/session", self._session),
                WebSocketRoute("/v1/duplex/{target}/{method}", self._duplex),
            ]
        )

    # what a call reaches ------------------------------------------------------------------------
    def _backend(self, target: str) -> Backend:
        try:
            return self.backends[Runtime(target)]
        except (ValueError, KeyError):
            raise InvalidRequest(f"This node has no {target!r} class.") from None

    def hello(self) -> dict[str, Any]:
        network = self.node.network
        return {
            "name": self.node.name,
            "range": network.range,
            "gateways": network.gateway_addresses(),
            "volumes": None if self.node.volumes is None else self.node.volumes.root,
            "ingress": self.ingress.address if self.ingress is not None else "",
            "egress": self.egress is not None,
            "backends": [
                {
                    "runtime": b.runtime,
                    "capabilities": set(b.capabilities),
                    "network_modes": set(b.network_modes),
                    "port_address": b.port_address,
                    "details": b.details(),
                    "offers": b.offers(),
                    "templates": b.templates(),
                    "list_templates": b.list_templates(),
                }
                for b in self.node.backends
            ],
        }

    def fence(self, generation: int) -> int:
        """Take ``generation`` as the node's current one (an older one is refused): calls of any
        older generation are refused from now on. Returns it."""
        if generation < self.generation:
            raise Unavailable(
                f"Node {self.node.name} is at registration generation {self.generation}; "
                f"generation {generation} is stale."
            )
        if generation != self.generation and self.generation_file is not None:
            temp = self.generation_file.with_suffix(".tmp")
            temp.write_text(str(generation), encoding="ascii")
            temp.replace(self.generation_file)
        self.generation = generation
        return generation

    def _current(self, call: dict[str, Any], method: str) -> None:
        """Refuse a call made under an older registration (``hello``, ``offer`` and ``fence`` answer
        anyone who authenticates: two read what the node is, the other has its own rule)."""
        carried = int(call.get("g", 0))
        if method not in ("hello", "offer", "fence") and carried < self.generation:
            raise Unavailable(
                f"Node {self.node.name} was registered again (generation {self.generation}); this call "
                f"carried generation {carried}. Retry: the control plane catches up within seconds."
            )

    def usages(self, runtime: Runtime, host_ids: list[str]) -> dict[str, ResourceUsage]:
        backend = self._backend(runtime.value)
        found: dict[str, ResourceUsage] = {}
        for host_id in host_ids:
            with contextlib.suppress(ShellsError, OSError):
                found[host_id] = backend.usage(host_id)
        return found

    def set_ports(
        self, entries: list[PortEntry], refused: dict[str, ShellsError] | None = None, report: bool = True
    ) -> PortsReport:
        if self.ingress is None:
            raise ActionNotSupported("This node serves no exposed ports.")
        return self.ingress.ports.set_ports(entries, refused, report=bool(report))

    def set_secrets(self, ca_key: str, ca_cert: str, table: dict[str, list[Brokered]]) -> int:
        if self.egress is None:
            raise ActionNotSupported("This node brokers no secrets.")
        return self.egress.set_secrets(ca_key, ca_cert, table)

    def drain_secret_uses(self) -> list[SecretUse]:
        return self.egress.secrets.drain_uses() if self.egress is not None else []

    async def _items(
        self, target: str, method: str, args: list[Any], kwargs: dict[str, Any]
    ) -> AsyncIterator[Item]:
        if target == "node" and method == "new_wakes":
            yield "r", self.ingress is not None and await self.ingress.ports.new_wakes(*args)
        elif target == "node" and method in NODE_CALLS:
            calls: dict[str, Callable[..., Any]] = {
                "hello": self.hello,
                "offer": lambda: self.offer() if self.offer is not None else None,
                "usages": self.usages,
                "fence": self.fence,
                "set_ports": self.set_ports,
                "set_secrets": self.set_secrets,
                "drain_secret_uses": self.drain_secret_uses,
            }
            yield "r", calls[method](*args, **kwargs)
        elif target == "network" and method in NETWORK_CALLS:
            fn = getattr(self.node.network, method)
            answer = await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
            yield "r", answer + self.refusals.drain() if method == "drain_blocked" else answer
        elif target == "durable" and method in CARRIER_CALLS:
            yield "r", await self._carry(method, args, kwargs)
        elif target == "volumes" and method in VOLUME_CALLS:
            yield "r", await self._volumes(method, args)
        elif target != "network" and method == "ensure_template":
            async for item in self._build(self._backend(target), args, kwargs):
                yield item
        elif target != "network" and method in BACKEND_SYNC | BACKEND_CALLS | BACKEND_STREAMS:
            answer = getattr(self._backend(target), method)(*args, **kwargs)
            if method in BACKEND_STREAMS:
                async for value in answer:
                    yield "i", value
                yield "r", None
            else:
                yield "r", await answer if method in BACKEND_CALLS else answer
        else:
            raise InvalidRequest(f"A node has no call {target}/{method}.")

    async def _carry(self, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if self.node.carrier is None:
            raise ActionNotSupported("This node has no object store to keep snapshots in.")
        try:
            return await getattr(self.node.carrier, method)(*args, **kwargs)
        except ObjectStoreError as exc:
            raise ObjectStoreUnavailable(f"The node could not use the object store: {exc}") from None

    async def _volumes(self, method: str, args: list[Any]) -> Any:
        """A call on the node's volume copies (``node.volume_copies``): its marks, or moving a copy."""
        volumes, carrier = self.node.volumes, self.node.volume_carrier
        if volumes is None or carrier is None:
            raise FeatureUnavailable("This node keeps no volumes (no pool, or no object store).")
        named = bool(args) and isinstance(args[0], str) and looks_like("vol", args[0])
        if method != "dirty" and not named:
            raise InvalidRequest("A volume call names a volume id (vol_…) first.")  # no other path
        if method in ("put_volume", "get_volume"):
            try:
                return await getattr(carrier, method)(*args)
            except ObjectStoreError as exc:
                raise ObjectStoreUnavailable(f"The node could not use the object store: {exc}") from None
        if method in ("create", "delete"):
            return await getattr(volumes, method)(*args)
        return await anyio.to_thread.run_sync(lambda: getattr(volumes, method)(*args))

    async def _build(self, backend: Backend, args: list[Any], kwargs: dict[str, Any]) -> AsyncIterator[Item]:
        """``ensure_template``'s progress as frames while it runs, then its answer."""
        send, receive = anyio.create_memory_object_stream[Item](PROGRESS_BUFFER)

        def progress(event: BuildEvent) -> None:
            with contextlib.suppress(anyio.WouldBlock):
                send.send_nowait(("p", event))

        async def run() -> None:
            async with send:
                try:
                    allow_build = bool(kwargs.get("allow_build", True))
                    meta = await backend.ensure_template(str(args[0]), progress, allow_build=allow_build)
                    await send.send(("r", meta))
                except ShellsError as e:
                    await send.send(("x", e))

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            async with receive:
                async for item in receive:
                    yield item

    # HTTP calls -----------------------------------------------------------------------------------
    async def _call(self, request: Request) -> Response:
        body = await _capped_body(request)
        if body is None:
            return PlainTextResponse("request too large", status_code=413)
        try:
            nonce = self.signer.verify(request.method, request.url.path, request.headers, body)
        except Unauthenticated as e:
            log.warning("refused an unauthenticated node call from %s: %s", request.client, e)
            return PlainTextResponse("unauthenticated", status_code=401)
        except Overloaded:
            return PlainTextResponse("too many requests", status_code=503)
        target, method = request.path_params["target"], request.path_params["method"]

        async def frames() -> AsyncIterator[bytes]:
            seq = 0
            async for kind, value in self._guarded(target, method, body):
                yield self.signer.frame(DOWN, nonce, seq, _payload(kind, value))
                seq += 1

        return StreamingResponse(frames(), media_type="application/x-shells-frames")

    async def _guarded(self, target: str, method: str, body: bytes) -> AsyncGenerator[Item, None]:
        """The call's frames; whatever it raises becomes its last frame (``x``)."""
        try:
            call = decode(json.loads(body))
            target, method = call.get("t", target), call.get("m", method)
            self._current(call, method)
            async for item in self._items(target, method, list(call["a"]), dict(call["k"])):
                yield item
        except ShellsError as e:
            yield "x", e
        except Exception as e:
            log.exception("node call %s/%s failed", target, method)
            yield "x", RuntimeFailure(f"The node failed running {method}: {type(e).__name__}: {e}")

    # sessions -----------------------------------------------------------------------------------
    async def _session(self, ws: WebSocket) -> None:
        """Plain and streamed calls one after another over one authenticated WebSocket, so a call
        costs two frames instead of an HTTP exchange. Each call is one frame naming it; the answer
        is its frames up to the last (``r`` or ``x``). Frames are numbered over the whole session."""
        link = await self._accepted(ws)
        if link is None:
            return
        try:
            while True:
                payload = await link.receive()
                async with contextlib.aclosing(self._guarded("", "", payload)) as frames:
                    async for kind, value in frames:
                        await link.send(kind, value)
        except (WebSocketDisconnect, Unauthenticated, OSError, RuntimeError):
            return  # the caller left (a stream it stopped reading), or broke the session's frames

    async def _accepted(self, ws: WebSocket) -> _Link | None:
        """The WebSocket accepted if its handshake is signed and fresh; else closed unaccepted (the
        client sees its handshake refused) and None."""
        try:
            nonce = self.signer.verify("GET", ws.url.path, ws.headers, b"")
        except (Unauthenticated, Overloaded) as e:
            log.warning("refused an unauthenticated node connection from %s: %s", ws.client, e)
            await ws.close(code=4401)
            return None
        await ws.accept()
        return _Link(ws, self.signer, nonce)

    # duplex calls ---------------------------------------------------------------------------------
    async def _duplex(self, ws: WebSocket) -> None:
        link = await self._accepted(ws)
        if link is None:
            return
        target, method = ws.path_params["target"], ws.path_params["method"]
        try:
            call = decode(json.loads(await link.receive()))
            self._current(call, method)
            args, kwargs = list(call["a"]), dict(call["k"])
            if target in ("node", "network") or method not in BACKEND_DUPLEX:
                raise InvalidRequest(f"A node has no duplex call {target}/{method}.")
            backend = self._backend(target)
            if method == "terminal":
                await self._terminal(link, backend, args)
                return
            result = await self._streamed(link, backend, method, args, kwargs)
            await link.send("r", result)
        except (WebSocketDisconnect, Unauthenticated):
            return
        except ShellsError as e:
            await _quietly(link.send("x", e))
        except Exception as e:
            log.exception("node duplex call %s/%s failed", target, method)
            await _quietly(link.send("x", RuntimeFailure(f"The node failed running {method}: {e}")))
        await _quietly(link.ws.close())

    async def _streamed(
        self, link: _Link, backend: Backend, method: str, args: list[Any], kwargs: dict[str, Any]
    ) -> Any:
        """exec, attach and write_file with their input fed from the caller's frames."""
        if method == "write_file":
            host_id, path, *rest = args
            return await backend.write_file(host_id, path, link.inputs(), *rest, **kwargs)
        if method == "exec":
            host_id, spec = args
            assert isinstance(spec, ExecSpec)
            events = backend.exec(host_id, replace(spec, stdin_stream=link.inputs()))
        else:
            host_id, pid = args
            events = backend.attach(host_id, pid, link.inputs())
        async for event in events:
            await link.send("i", event)
        return None

    async def _terminal(self, link: _Link, backend: Backend, args: list[Any]) -> None:
        async with backend.terminal(*args) as term:
            await link.send("ok", None)
            async with anyio.create_task_group() as tg:

                async def keys() -> None:
                    while True:
                        kind, value = _unpack(await link.receive())
                        if kind == "w" and isinstance(value, bytes):
                            await term.write(value)
                        elif kind == "z":
                            await term.resize(*value)
                        else:
                            tg.cancel_scope.cancel()
                            return

                tg.start_soon(keys)
                while True:
                    out = await term.read()
                    await link.send("i", out)
                    if not isinstance(out, bytes):
                        break
                tg.cancel_scope.cancel()
        await link.send("r", None)


class _Link:
    """One duplex call's signed frames, each direction numbered from 0 (the call frame is up 0)."""

    def __init__(self, ws: WebSocket, signer: Signer, nonce: str) -> None:
        self.ws = ws
        self.signer = signer
        self.nonce = nonce
        self.up = 0
        self.down = 0
        self.lock = anyio.Lock()

    async def receive(self) -> bytes:
        raw = await self.ws.receive_bytes()
        if len(raw) > NODE_RPC_MAX_FRAME_BYTES:
            raise Unauthenticated("frame too large")
        payload = self.signer.open(UP, self.nonce, self.up, raw)
        self.up += 1
        return payload

    async def send(self, kind: str, value: Any) -> None:
        async with self.lock:
            await self.ws.send_bytes(self.signer.frame(DOWN, self.nonce, self.down, _payload(kind, value)))
            self.down += 1

    async def inputs(self) -> AsyncIterator[Any]:
        """The caller's input frames (``i``) until its ``eof``."""
        while True:
            tag, value = _unpack(await self.receive())
            if tag != "i":
                return
            yield value


def _payload(kind: str, value: Any) -> bytes:
    return json.dumps({"k": kind, "v": encode(value)}, separators=(",", ":")).encode()


def _unpack(payload: bytes) -> tuple[str, Any]:
    doc = json.loads(payload)
    return str(doc["k"]), decode(doc["v"])


async def _capped_body(request: Request) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > NODE_RPC_MAX_FRAME_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _quietly(action: Awaitable[None]) -> None:
    with contextlib.suppress(Exception):
        await action
