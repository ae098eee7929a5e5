"""The egress proxy: HTTPS from shells with secrets, with placeholders swapped for values.

The dataplane sends a brokered shell's outbound TCP to port 443 here (``ruleset``: a DNAT in the
host's prerouting, which the shell cannot see or change). For each connection the proxy finds the
shell by its source address and the real destination by ``SO_ORIGINAL_DST``, then peeks at the TLS
ClientHello without consuming it:

- no SNI, or a name none of the shell's secrets covers: the bytes are relayed untouched, never
  decrypted, to where the shell was going;
- a covered name: TLS is answered with a certificate for that name from the instance's egress CA
  (which the shell trusts), the request head is read (capped), placeholders are swapped
  (``headsub``), and it goes on over a new TLS connection to the real destination, whose
  certificate must be valid for that name under the host's trust store. Every swap is reported
  to ``EgressPolicy.used`` (the audit trail).

Upstream connections are made from inside the shell's own network namespace (``inside``), so the
shell's policy (allow list, refused ranges, metadata addresses) applies to them as to anything the
shell sends itself; they carry ``PROXY_DSCP`` so the DNAT lets them by. A shell that sets that DSCP
on its own traffic only skips the proxy, which gives it nothing: the values are only ever here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
import struct
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from ...domain.errors import RuntimeFailure
from ...domain.limits import (
    EGRESS_HANDSHAKE_TIMEOUT_S,
    EGRESS_MAX_CLIENT_HELLO_BYTES,
    EGRESS_MAX_CONNECTIONS_PER_SHELL,
    EGRESS_MAX_HEAD_BYTES,
)
from ...domain.secrets import Brokered
from .connections import Connections
from .egress_ca import EgressCA
from .headsub import substitute
from .inside import socket_inside
from .ruleset import PROXY_DSCP, PROXY_PORT
from .tlshello import RECORD_HEADER, record_length, server_name

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_SO_ORIGINAL_DST = 80
_IP_FREEBIND = 15
_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class EgressPolicy(Protocol):
    """What the proxy asks the control plane."""

    def client_of(self, address: ipaddress.IPv4Address) -> str | None:
        """The shell whose port sends from ``address``."""

    def netns_of(self, shell_id: str) -> str | None:
        """The path of the shell's network namespace."""

    def secrets_for(self, shell_id: str, host: str) -> Sequence[Brokered]:
        """The shell's secrets that may go to ``host`` (values read now: a rotation applies at once)."""

    def used(self, shell_id: str, host: str, names: Sequence[str]) -> None:
        """Secrets were put into a request to ``host`` (for the audit trail)."""


class EgressProxy:
    def __init__(self, policy: EgressPolicy, ca: EgressCA, upstream: ssl.SSLContext) -> None:
        self.policy, self.ca, self.upstream = policy, ca, upstream
        self._servers: list[_Listener] = []
        self._connections = Connections()
        self._open: Counter[str] = Counter()
        self._handlers: set[asyncio.Task[None]] = set()

    async def listen(self, address: ipaddress.IPv4Address, port: int = PROXY_PORT) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_IP, _IP_FREEBIND, 1)
            sock.bind((str(address), port))
            sock.listen(512)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        loop = asyncio.get_running_loop()

        async def accept_loop() -> None:
            while True:
                conn, _ = await loop.sock_accept(sock)
                conn.setblocking(False)
                handler = loop.create_task(self._connections.serve(self._serve(conn)))
                self._handlers.add(handler)
                handler.add_done_callback(self._handlers.discard)

        task = loop.create_task(accept_loop())
        self._servers.append(_Listener(sock, task))

    async def close(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()
        self._servers.clear()
        await self._connections.cut()

    # one connection -------------------------------------------------------------------------------
    async def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                peer = ipaddress.IPv4Address(conn.getpeername()[0])
                shell_id = self.policy.client_of(peer)
                netns = self.policy.netns_of(shell_id) if shell_id else None
                dest = _original_destination(conn)
            except (OSError, ValueError):
                return
            if shell_id is None or netns is None or dest is None:
                return
            if self._open[shell_id] >= EGRESS_MAX_CONNECTIONS_PER_SHELL:
                log.warning(
                    "shell %s holds %d egress connections; refusing more", shell_id, self._open[shell_id]
                )
                return
            self._open[shell_id] += 1
            try:
                await self._route(conn, shell_id, netns, dest)
            except (OSError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError, RuntimeFailure) as exc:
                log.info("egress of %s to %s:%d ended: %r", shell_id, *dest, exc)
            finally:
                self._open[shell_id] -= 1
                if not self._open[shell_id]:
                    del self._open[shell_id]

    async def _route(self, conn: socket.socket, shell_id: str, netns: str, dest: tuple[str, int]) -> None:
        async with asyncio.timeout(EGRESS_HANDSHAKE_TIMEOUT_S):
            hello = await _peek(conn, RECORD_HEADER)
            length = record_length(hello)
            host = None
            if length is not None and RECORD_HEADER + length <= EGRESS_MAX_CLIENT_HELLO_BYTES:
                host = server_name(await _peek(conn, RECORD_HEADER + length))
        secrets = self.policy.secrets_for(shell_id, host) if host else ()
        if not host or not secrets:
            await self._relay(conn, netns, dest)
        else:
            await self._broker(conn, shell_id, netns, dest, host, secrets)

    async def _relay(self, conn: socket.socket, netns: str, dest: tuple[str, int]) -> None:
        up = await _connect_inside(netns, dest)
        up_reader, up_writer = await asyncio.open_connection(sock=up)
        reader, writer = await asyncio.open_connection(sock=conn.dup())
        try:
            await _splice(reader, writer, up_reader, up_writer)
        finally:
            for w in (writer, up_writer):
                w.close()

    async def _broker(
        self,
        conn: socket.socket,
        shell_id: str,
        netns: str,
        dest: tuple[str, int],
        host: str,
        secrets: Sequence[Brokered],
    ) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=EGRESS_MAX_HEAD_BYTES)
        protocol = asyncio.StreamReaderProtocol(reader)
        async with asyncio.timeout(EGRESS_HANDSHAKE_TIMEOUT_S):
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, conn.dup(), ssl=self.ca.server_context(host)
            )
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        up_writer: asyncio.StreamWriter | None = None
        try:
            try:
                async with asyncio.timeout(EGRESS_HANDSHAKE_TIMEOUT_S):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.LimitOverrunError, ValueError):
                writer.write(_TOO_LARGE)
                await writer.drain()
                return
            head, used = substitute(head, host, secrets)
            up = await _connect_inside(netns, dest)
            async with asyncio.timeout(EGRESS_HANDSHAKE_TIMEOUT_S):
                up_reader, up_writer = await asyncio.open_connection(
                    sock=up, ssl=self.upstream, server_hostname=host
                )
            if used:
                self.policy.used(shell_id, host, used)
            up_writer.write(head)
            await _splice(reader, writer, up_reader, up_writer)
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    w.close()


class _Listener:
    """An accept loop on one socket, closed like an ``asyncio.Server``."""

    def __init__(self, sock: socket.socket, task: asyncio.Task[None]) -> None:
        self.sock, self.task = sock, task

    def close(self) -> None:
        self.task.cancel()
        self.sock.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def upstream_context(extra_cafile: str | None) -> ssl.SSLContext:
    """How the proxy checks the real hosts: the system's trust store, plus ``extra_cafile``."""
    ctx = ssl.create_default_context()
    if extra_cafile:
        ctx.load_verify_locations(cafile=extra_cafile)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _original_destination(conn: socket.socket) -> tuple[str, int] | None:
    raw = conn.getsockopt(socket.SOL_IP, _SO_ORIGINAL_DST, 16)
    port, address = struct.unpack_from("!2xH4s", raw)
    dest = (str(ipaddress.IPv4Address(address)), port)
    return None if dest == conn.getsockname()[:2] else dest


async def _peek(conn: socket.socket, size: int) -> bytes:
    """The first ``size`` bytes the client sent (fewer if it closed), left unread in the socket."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data = conn.recv(size, socket.MSG_PEEK)
        except BlockingIOError:
            data = None
        if data is not None and (len(data) >= size or not data):
            return data
        if data:  # part of it is there: the rest follows shortly
            await asyncio.sleep(0.005)
            continue
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(conn.fileno(), _settle, ready)
        try:
            await ready
        finally:
            loop.remove_reader(conn.fileno())


async def _splice(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    """Copy both ways until both inputs end. The end of one input is passed on as a half-close
    where the transport has one (TCP) and as a close where it has not (TLS): a shell's client that
    hung up after its answer must not leave the upstream connection waiting for it."""
    await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer), return_exceptions=True)


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while chunk := await src.read(_CHUNK):
            dst.write(chunk)
            await dst.drain()
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if dst.can_write_eof() and not dst.is_closing():
                dst.write_eof()
            else:
                dst.close()


def _settle(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def _connect_inside(netns: str, dest: tuple[str, int]) -> socket.socket:
    sock = await socket_inside(netns)
    try:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, PROXY_DSCP << 2)
        async with asyncio.timeout(EGRESS_HANDSHAKE_TIMEOUT_S):
            await asyncio.get_running_loop().sock_connect(sock, dest)
    except BaseException:
        sock.close()
        raise
    return sock
