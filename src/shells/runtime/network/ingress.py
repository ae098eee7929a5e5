"""The ingress proxy: one host-side HTTP listener that reaches the ports a shell's owner exposed.

Nothing inside a shell is reachable from outside unless its owner exposes a port; then a request
reaches it through this proxy at either

* ``http://{port}-{shell_id}.{domain}[:ingress_port]/path`` (routing by the Host header; the default
  domain ``localhost`` works without DNS set-up, since ``*.localhost`` is loopback), or
* ``http://{ingress_host}:{ingress_port}/{shell_id}/{port}/path`` (routing by path prefix, for
  clients without wildcard DNS; the service sees ``/path`` and ``X-Forwarded-Prefix``).

A port that is not public needs its access token, in the ``X-Shells-Port-Token`` header, or once as
``?shells_token=…``: that answers with a redirect to the same URL without the token that sets an
HttpOnly cookie scoped to that host (and, for the path form, to that prefix). Tokens are stored only as
SHA-256 hashes and compared in constant time; they are 256-bit random, so a fast hash is enough.

Each client connection carries one request: its head is read (capped at ``HEAD_LIMIT`` bytes and
``HEAD_TIMEOUT_S``), checked, rewritten (token header and cookie removed, ``Connection: close`` unless
it is an upgrade) and sent to the service over a socket created inside the shell's network namespace
(:mod:`.inside`), connected to where the shell's class puts its servers (``Exposure.address``: its
loopback for a container, the guest behind the tap for a VM). A paused shell that wakes on request
(``Exposure.wakes``) is resumed first and the request waits for it (``ExposedPorts.wake``: concurrent
first requests share one resume); any other shell that is not running answers 409.
From then on bytes are copied both ways with backpressure until the service closes, so bodies stream
and WebSocket upgrades work. One request per connection keeps every request checked and routed on its
own: a pipelined second request cannot ride along to another shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from shells.domain.errors import QuotaExceeded, RuntimeFailure, ShellsError
from shells.runtime.network.connections import Connections
from shells.runtime.network.httphead import (
    MalformedHead,
    RequestHead,
    parse_request_head,
    render_request_head,
)
from shells.runtime.network.inside import LOOPBACK, open_connection_inside

log = logging.getLogger(__name__)

HEAD_LIMIT = 32 * 1024
HEAD_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
CHUNK = 64 * 1024
LINGER_S = 1.0
LINGER_BYTES = 1 << 20

TOKEN_HEADER = "X-Shells-Port-Token"
TOKEN_QUERY = "shells_token"
TOKEN_COOKIE = "shells_token"
_FORWARDED = ("X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Prefix")
_REASONS = {
    307: "Temporary Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
}


@dataclass(frozen=True)
class Exposure:
    """One exposed port, as the proxy needs it."""

    netns: str
    """The shell's network namespace file (``/run/shells/<instance>/netns/<host id>``)."""
    address: str = LOOPBACK
    """Where the port is, seen from inside that namespace: the backend's ``port_address``."""
    public: bool = False
    token_hash: str | None = None
    """``hash_port_token(token)``; None only for a public port."""
    not_running: str | None = None
    """The shell's state when it is not running (paused, stopped, …): nothing can answer then."""
    wakes: bool = False
    """The shell is paused and resumes for a request (its ``auto_resume``)."""


class ExposedPorts(Protocol):
    """Where the proxy looks exposures up; the control layer owns the records behind it."""

    def lookup(self, shell_id: str, port: int) -> Exposure | None: ...

    async def wake(self, shell_id: str, port: int) -> Exposure | None:
        """Resume the shell behind a port whose exposure ``wakes``; the exposure once it is back."""
        ...


class MemoryExposedPorts:
    """An in-memory ``ExposedPorts``: the control layer keeps it in step with its records."""

    def __init__(self) -> None:
        self._ports: dict[tuple[str, int], Exposure] = {}

    def lookup(self, shell_id: str, port: int) -> Exposure | None:
        return self._ports.get((shell_id, port))

    def expose(self, shell_id: str, port: int, exposure: Exposure) -> None:
        self._ports[(shell_id, port)] = exposure

    def close(self, shell_id: str, port: int) -> None:
        self._ports.pop((shell_id, port), None)

    def close_shell(self, shell_id: str) -> None:
        for key in [k for k in self._ports if k[0] == shell_id]:
            del self._ports[key]

    async def wake(self, shell_id: str, port: int) -> Exposure | None:
        return self.lookup(shell_id, port)


def new_port_token() -> tuple[str, str]:
    """A fresh access token and its hash: show the token once, store only the hash."""
    token = secrets.token_urlsafe(32)
    return token, hash_port_token(token)


def hash_port_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, token_hash: str) -> bool:
    """Constant-time comparison of a presented token with a stored hash."""
    return hmac.compare_digest(hash_port_token(token), token_hash)


@dataclass(frozen=True)
class Route:
    """Where a request goes: the shell, its port, the target the service sees."""

    shell_id: str
    port: int
    target: str
    prefix: str = ""
    """``/{shell_id}/{port}`` for the path form, empty for the Host form."""


def route_request(head: RequestHead, domain: str) -> Route | None:
    """The route named by the Host header (``{port}-{shell_id}.{domain}``) or the path prefix."""
    host = (head.get("host") or "").lower()
    if not host.startswith("["):
        host = host.rpartition(":")[0] if host.rpartition(":")[2].isdigit() else host
    label = host.removesuffix("." + domain.lower())
    if label != host and "." not in label:
        port, dash, shell_id = label.partition("-")
        if dash and shell_id and _is_port(port):
            return Route(shell_id, int(port), head.target)
    path, mark, query = head.target.partition("?")
    parts = path.split("/", 3)
    if len(parts) < 3 or not parts[1] or not _is_port(parts[2]):
        return None
    rest = "/" + (parts[3] if len(parts) == 4 else "")
    return Route(parts[1], int(parts[2]), rest + mark + query, prefix=f"/{parts[1]}/{parts[2]}")


def _is_port(text: str) -> bool:
    return text.isdigit() and len(text) <= 5 and 1 <= int(text) <= 65535


class _Answer(Exception):
    """An answer the proxy gives itself instead of forwarding."""

    def __init__(self, status: int, code: str, message: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = list(headers)

    def render(self) -> bytes:
        body = json.dumps({"error": {"code": self.code, "message": self.message, "details": {}}}).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
            *self.headers,
        ]
        lines = [f"HTTP/1.1 {self.status} {_REASONS[self.status]}", *(f"{k}: {v}" for k, v in headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class IngressProxy:
    """The listener; ``start`` it once, ``close`` it on shutdown."""

    def __init__(self, ports: ExposedPorts, domain: str = "localhost") -> None:
        self._ports = ports
        self._domain = domain
        self._server: asyncio.Server | None = None
        self._connections = Connections()

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` (port 0 picks a free one; see ``port``)."""
        self._server = await asyncio.start_server(
            lambda r, w: self._connections.serve(self._serve(r, w)), host, port, limit=HEAD_LIMIT
        )

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        """Stop listening and cut every open connection."""
        if self._server is not None:
            self._server.close()
        await self._connections.cut()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._proxy(reader, writer)
        except _Answer as answer:
            with contextlib.suppress(OSError, TimeoutError):
                writer.write(answer.render())
                writer.write_eof()
                await writer.drain()
                await _discard_rest(reader)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away or stalled: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(HEAD_TIMEOUT_S):
                raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _Answer(
                431, "header_too_large", f"The request head is larger than {HEAD_LIMIT // 1024} KiB."
            ) from None
        try:
            head = parse_request_head(raw)
        except MalformedHead as exc:
            raise _Answer(400, "invalid_request", f"Malformed HTTP request: {exc}.") from None
        where = route_request(head, self._domain)
        if where is None:
            raise _Answer(
                404,
                "not_found",
                f"No exposed port here: use http://PORT-SHELL_ID.{self._domain}/ or /SHELL_ID/PORT/.",
            )
        exposure = self._ports.lookup(where.shell_id, where.port)
        if exposure is None:
            raise _Answer(
                404,
                "port_not_exposed",
                f"Port {where.port} of shell {where.shell_id} is not exposed: expose it with "
                f"POST /v1/shells/{where.shell_id}/ports.",
            )
        if not exposure.public:
            _authorize(head, where, exposure)
        if exposure.not_running is not None and exposure.wakes:
            exposure = await self._wake(where)
        if exposure.not_running is not None:
            raise _Answer(
                409,
                "invalid_state",
                f"Shell {where.shell_id} is {exposure.not_running}, so nothing answers on its port "
                f"{where.port}: start or resume it (POST /v1/shells/{where.shell_id}/actions/resume).",
            )
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                up_reader, up_writer = await open_connection_inside(
                    exposure.netns, where.port, host=exposure.address, limit=CHUNK
                )
        except (OSError, RuntimeFailure, TimeoutError):
            raise _Answer(
                502,
                "port_unreachable",
                f"Nothing in shell {where.shell_id} accepted a connection on port {where.port}: "
                f"start a server listening on {_listen_hint(exposure.address, where.port)} in it.",
            ) from None
        try:
            peer = writer.get_extra_info("peername")
            up_writer.write(_forwarded_head(head, where, peer[0] if peer else ""))
            await _copy_both_ways(reader, writer, up_reader, up_writer)
        finally:
            up_writer.close()

    async def _wake(self, where: Route) -> Exposure:
        """The exposure after resuming its shell; a resume that fails or is refused is answered."""
        try:
            exposure = await self._ports.wake(where.shell_id, where.port)
        except RuntimeFailure as exc:
            raise _Answer(
                502, "wake_failed", f"Shell {where.shell_id} could not resume: {exc.message}"
            ) from None
        except QuotaExceeded as exc:  # the budget cap: the same 403 the REST API answers
            raise _Answer(403, exc.code, exc.message) from None
        except ShellsError as exc:
            raise _Answer(409, exc.code, exc.message) from None
        if exposure is None:
            raise _Answer(404, "port_not_exposed", f"Port {where.port} of shell {where.shell_id} is closed.")
        return exposure


def _listen_hint(address: str, port: int) -> str:
    """A server on the shell's loopback is reachable only where the proxy connects to loopback."""
    if address == LOOPBACK:
        return f"{LOOPBACK}:{port} or 0.0.0.0:{port}"
    return f"0.0.0.0:{port} (its loopback is not reachable from outside the VM)"


def _authorize(head: RequestHead, where: Route, exposure: Exposure) -> None:
    """Return if the request carries the port's token; raise the answer to give otherwise."""
    stored = exposure.token_hash
    header = head.get(TOKEN_HEADER)
    if header is not None:
        if stored is None or not token_matches(header, stored):
            raise _wrong_token()
        return
    path, _, query = where.target.partition("?")
    from_query = _query_value(query, TOKEN_QUERY)
    if from_query is not None:
        if stored is None or not token_matches(from_query, stored):
            raise _wrong_token()
        remaining = _query_without(query, TOKEN_QUERY)
        location = where.prefix + path + ("?" + remaining if remaining else "")
        cookie = f"{TOKEN_COOKIE}={from_query}; Path={where.prefix or '/'}; HttpOnly; SameSite=Lax"
        raise _Answer(
            307,
            "token_accepted",
            "Token accepted; follow the redirect.",
            [("Location", location), ("Set-Cookie", cookie), ("Cache-Control", "no-store")],
        )
    cookies = _cookie_values(head, TOKEN_COOKIE)
    if stored is not None and any(token_matches(c, stored) for c in cookies):
        return
    if cookies:
        raise _wrong_token()
    raise _Answer(
        401,
        "unauthenticated",
        f"Port {where.port} of shell {where.shell_id} needs its access token: send the {TOKEN_HEADER} "
        f"header, or open the URL once with ?{TOKEN_QUERY}=TOKEN.",
    )


def _wrong_token() -> _Answer:
    return _Answer(
        403,
        "permission_denied",
        "The port access token is wrong: use the one returned when the port was exposed.",
    )


def _query_value(query: str, key: str) -> str | None:
    return next((v for k, _, v in (p.partition("=") for p in query.split("&")) if k == key), None)


def _query_without(query: str, key: str) -> str:
    return "&".join(p for p in query.split("&") if p and p.partition("=")[0] != key)


def _cookie_values(head: RequestHead, name: str) -> list[str]:
    pairs = (c.strip().partition("=") for v in head.get_all("cookie") for c in v.split(";"))
    return [value for key, _, value in pairs if key == name]


def _cookies_without(head: RequestHead, name: str) -> str:
    kept = (c.strip() for v in head.get_all("cookie") for c in v.split(";"))
    return "; ".join(c for c in kept if c and c.partition("=")[0] != name)


def _forwarded_head(head: RequestHead, where: Route, client_ip: str) -> bytes:
    """The head the service gets: no token, no token cookie, one request per connection."""
    dropped = [TOKEN_HEADER, "Cookie", *_FORWARDED]
    if not head.wants_upgrade():
        dropped += ["Connection", "Keep-Alive", "Proxy-Connection"]
    headers = head.without(*dropped)
    cookies = _cookies_without(head, TOKEN_COOKIE)
    if cookies:
        headers.append(("Cookie", cookies))
    if not head.wants_upgrade():
        headers.append(("Connection", "close"))
    headers.append(("X-Forwarded-For", client_ip))
    if head.get("host") is not None:
        headers.append(("X-Forwarded-Host", head.get("host") or ""))
    if where.prefix:
        headers.append(("X-Forwarded-Prefix", where.prefix))
    return render_request_head(head.method, where.target, head.version, headers)


async def _copy_both_ways(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """Copy until the service closes; the client's end of input is passed on as a half-close."""
    upstream = asyncio.create_task(_copy(client_reader, up_writer))
    try:
        await _copy(up_reader, client_writer)
    finally:
        upstream.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await upstream


async def _discard_rest(reader: asyncio.StreamReader) -> None:
    """Read what the client still sends (a body we did not want) for a moment before closing:
    closing with unread input makes the kernel send RST, which can destroy our answer in flight."""
    async with asyncio.timeout(LINGER_S):
        for _ in range(LINGER_BYTES // CHUNK):
            if not await reader.read(CHUNK):
                return


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    while chunk := await src.read(CHUNK):
        dst.write(chunk)
        await dst.drain()
    if dst.can_write_eof():
        dst.write_eof()
