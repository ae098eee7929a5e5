"""The host-side DNS resolver every networked shell must use; it enforces the shell's name allowlist.

It listens (UDP and TCP) on the gateway addresses the shells reach, tells shells apart by source
address, and for each query:

* a name of a shell on one of the client's private networks (``<shell-name>`` or
  ``<shell-name>.<network-name>``) is answered locally with its address;
* a name the client's allowlist matches is looked up upstream (a fresh query, see
  :mod:`.dns_upstream`); before the answer leaves, the A/AAAA addresses at the end of the CNAME
  chain are handed to ``ResolverPolicy.record_answer`` (which loads them into the shell's nftables
  set), so a connection the client makes to them right after is already allowed;
* anything else is answered REFUSED, with Extended DNS Error 18 "Prohibited" when the client speaks
  EDNS, is recorded through ``record_refusal``, and is **never sent upstream**: a crafted name
  (``<secret>.attacker.example``) cannot carry data out through DNS;
* a query from an unknown source address is REFUSED.

Choices:

* **Patterns**: ``api.example.org`` matches that name only; ``*.example.org`` matches names one or
  more labels below it, **not** ``example.org`` itself (list the apex too if it is wanted); ``*``
  matches every name (an ``internet`` shell without an allowlist). Matching is by labels,
  case-insensitive, so ``evil\\.example.org`` (one label holding a dot) does not match ``*.example.org``.
* **REFUSED, not NXDOMAIN**: it says "this server will not answer", which is the truth, lets tools in
  the shell tell "blocked" from "does not exist", and is not cached as a negative answer that would
  outlive a change of the allowlist.
* **TTLs**: every answer's TTL is set to the smallest TTL of its records, clamped to
  ``[min_ttl_s, max_ttl_s]``, and the same number is passed to ``record_answer``: the client never
  caches an address for longer than the host keeps it allowed, and TTL-0 answers do not make the host
  rewrite the set on every query.
* **No cache** of its own: the upstream caches; one query here costs one query there.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import socket
import struct
from collections import Counter
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from shells.domain.errors import RuntimeFailure
from shells.runtime.network.connections import Connections
from shells.runtime.network.dns_upstream import (
    ADDRESS_TYPES,
    UPSTREAM_PAYLOAD,
    IPAddress,
    Upstream,
    UpstreamFailed,
    host_upstreams,
    lookup,
)

log = logging.getLogger(__name__)

DNS_PORT = 53
MIN_TTL_S = 30
MAX_TTL_S = 3600
PEER_TTL_S = 5
"""Private-network peers come and go with their shells: keep them out of caches for long."""
MAX_PENDING_PER_CLIENT = 64
"""Upstream look-ups one shell may have in flight; more are answered SERVFAIL at once."""
TCP_IDLE_S = 10.0
_UDP_PLAIN_LIMIT = 512
_NOT_FORWARDED = frozenset(
    {dns.rdatatype.ANY, dns.rdatatype.AXFR, dns.rdatatype.IXFR, dns.rdatatype.OPT, dns.rdatatype.TSIG}
)
_ADDRESS_TYPE = {4: dns.rdatatype.A, 6: dns.rdatatype.AAAA}
_IP_FREEBIND = 15
_IPV6_FREEBIND = 78


@dataclass(frozen=True)
class Peer:
    """A shell on one of the client's private networks: it answers to ``name`` and ``name.network``."""

    network: str
    name: str
    address: IPAddress


class ResolverPolicy(Protocol):
    """What the resolver asks the host's network layer. Look-ups are called on every query and must
    be cheap and non-blocking; the two records are awaited (``record_answer`` before the answer is
    sent) and may take their time."""

    def client_of(self, address: IPAddress) -> str | None:
        """The shell (host id) whose address this is, or None."""
        ...

    def allowed_names(self, client: str) -> Sequence[str]:
        """The client's name patterns (see the module doc); empty for a shell that may resolve none."""
        ...

    def peers(self, client: str) -> Iterable[Peer]:
        """The shells the client can reach by name."""
        ...

    async def record_answer(
        self, client: str, patterns: Sequence[str], name: str, addresses: Sequence[IPAddress], ttl_s: int
    ) -> None:
        """Allow ``addresses`` (what ``name`` resolved to) for ``ttl_s`` seconds under each of the
        client's ``patterns`` that matched ``name``. An exception turns the answer into SERVFAIL."""
        ...

    async def record_refusal(self, client: str, name: str, qtype: str) -> None:
        """Note a refused question (the blocked log). Runs after the answer is sent."""
        ...


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str) -> tuple[bool, dns.name.Name] | None:
    """(is a wildcard, the name or suffix) for a pattern; None for ``*`` (everything)."""
    if pattern == "*":
        return None
    wildcard = pattern.startswith("*.")
    return wildcard, dns.name.from_text(pattern[2:] if wildcard else pattern).canonicalize()


def name_matches(pattern: str, name: dns.name.Name) -> bool:
    """Whether an allowlist pattern admits ``name`` (absolute, any case). Bad patterns admit nothing."""
    try:
        compiled = _compiled(pattern)
    except dns.exception.DNSException:
        return False
    if compiled is None:
        return True
    wildcard, target = compiled
    name = name.canonicalize()
    if wildcard:
        return bool(name != target and name.is_subdomain(target))
    return bool(name == target)


class DnsResolver:
    """The resolver. ``listen`` on each gateway address (more can be added while it runs), ``close``
    on shutdown; ``answer`` is the transport-free core."""

    def __init__(
        self,
        policy: ResolverPolicy,
        upstreams: Sequence[Upstream] | None = None,
        *,
        port: int = DNS_PORT,
        min_ttl_s: int = MIN_TTL_S,
        max_ttl_s: int = MAX_TTL_S,
    ) -> None:
        self._policy = policy
        self._upstreams = list(upstreams) if upstreams is not None else host_upstreams()
        self._port = port
        self._min_ttl = min_ttl_s
        self._max_ttl = max_ttl_s
        self._listeners: dict[IPAddress, tuple[asyncio.DatagramTransport, _UdpProtocol, asyncio.Server]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending: Counter[str] = Counter()
        self._connections = Connections()

    async def listen(self, address: IPAddress | str) -> None:
        """Serve UDP and TCP on ``address`` (it need not exist yet: the sockets use IP_FREEBIND)."""
        ip = ipaddress.ip_address(address)
        if ip in self._listeners:
            return
        loop = asyncio.get_running_loop()
        udp = _bound_socket(ip, self._port, socket.SOCK_DGRAM)
        try:
            tcp = _bound_socket(ip, self._port, socket.SOCK_STREAM)
        except BaseException:
            udp.close()
            raise
        transport, udp_protocol = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), sock=udp)
        server = await asyncio.start_server(
            lambda r, w: self._connections.serve(self._serve_tcp(r, w)), sock=tcp
        )
        self._listeners[ip] = (transport, udp_protocol, server)

    async def stop_listening(self, address: IPAddress | str) -> None:
        found = self._listeners.pop(ipaddress.ip_address(address), None)
        if found is not None:
            transport, udp_protocol, server = found
            transport.close()
            server.close()
            await server.wait_closed()
            await udp_protocol.closed  # the socket is closed on a later loop turn; then the port is free

    async def close(self) -> None:
        for address in list(self._listeners):
            await self.stop_listening(address)
        await self._connections.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background, kept referenced, cancelled by ``close``, failures logged."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("dns: background work failed", exc_info=task.exception())

    async def answer(self, wire: bytes, source: IPAddress, *, tcp: bool) -> bytes | None:
        """The reply to one query packet from ``source`` (None: send nothing). Over UDP a reply that
        does not fit the client's buffer is truncated (TC set), and the client retries over TCP."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # dnspython raises many types for garbage; none may stop the server
            return _format_error(wire)
        if query.flags & dns.flags.QR:
            return None  # a response sent to us: never answer it (no reflection loops)
        response = dns.message.make_response(query, recursion_available=True, our_payload=UPSTREAM_PAYLOAD)
        try:
            await self._fill(query, response, source)
        except Exception:
            log.exception("dns: answering a query from %s failed", source)
            response.answer.clear()
            response.set_rcode(dns.rcode.SERVFAIL)
        if tcp:
            return response.to_wire(max_size=65535)
        limit = (
            max(_UDP_PLAIN_LIMIT, min(query.payload, UPSTREAM_PAYLOAD))
            if query.edns >= 0
            else _UDP_PLAIN_LIMIT
        )
        return response.to_wire(max_size=limit, prefer_truncation=True)

    async def _fill(
        self, query: dns.message.Message, response: dns.message.Message, source: IPAddress
    ) -> None:
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return
        question = query.question[0]
        name, rdtype = question.name.canonicalize(), question.rdtype
        client = self._policy.client_of(source)
        if client is None:
            _refuse(query, response, "this address is not a shell's")
            return
        if question.rdclass != dns.rdataclass.IN:
            _refuse(query, response, "only class IN is served")
            return
        peer_addresses = self._peer_addresses(client, name)
        if peer_addresses is not None:
            matching = [str(a) for a in peer_addresses if _ADDRESS_TYPE[a.version] == rdtype]
            if matching:
                response.answer.append(dns.rrset.from_text_list(name, PEER_TTL_S, "IN", rdtype, matching))
            return
        patterns = [p for p in self._policy.allowed_names(client) if name_matches(p, name)]
        if not patterns or rdtype in _NOT_FORWARDED:
            _refuse(query, response, "not in this shell's allow list")
            self._spawn(self._policy.record_refusal(client, _text(name), dns.rdatatype.to_text(rdtype)))
            return
        if self._pending[client] >= MAX_PENDING_PER_CLIENT:
            response.set_rcode(dns.rcode.SERVFAIL)
            return
        self._pending[client] += 1
        try:
            found = await lookup(self._upstreams, name, rdtype)
        except UpstreamFailed as exc:
            log.warning("dns: %s", exc)
            response.set_rcode(dns.rcode.SERVFAIL)
            return
        finally:
            self._pending[client] -= 1
            if not self._pending[client]:
                del self._pending[client]
        smallest = min((rrset.ttl for rrset in found.answer), default=0)
        ttl = min(self._max_ttl, max(self._min_ttl, smallest))
        if found.addresses and rdtype in ADDRESS_TYPES:
            await self._policy.record_answer(client, patterns, _text(name), found.addresses, ttl)
        for rrset in found.answer:
            rrset.ttl = ttl
        response.answer = found.answer
        response.set_rcode(found.rcode)

    def _peer_addresses(self, client: str, name: dns.name.Name) -> list[IPAddress] | None:
        """Addresses of the peers called ``name``, or None if no peer is (an empty list is NODATA)."""
        text = _text(name)
        found = [
            p.address
            for p in self._policy.peers(client)
            if text in (p.name.lower(), f"{p.name}.{p.network}".lower())
        ]
        return found or None

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            source = ipaddress.ip_address(peer[0])
            while True:
                async with asyncio.timeout(TCP_IDLE_S):
                    (size,) = struct.unpack("!H", await reader.readexactly(2))
                    wire = await reader.readexactly(size)
                reply = await self.answer(wire, source, tcp=True)
                if reply is None:
                    return
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, resolver: DnsResolver) -> None:
        self._resolver = resolver
        self._transport: asyncio.DatagramTransport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)  # not a subclass in 3.11

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._resolver._spawn(self._reply(data, addr))

    async def _reply(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        reply = await self._resolver.answer(data, ipaddress.ip_address(addr[0]), tcp=False)
        if reply is not None and self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(reply, addr)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns: udp error %s", exc)


def _bound_socket(ip: IPAddress, port: int, kind: int) -> socket.socket:
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    sock = socket.socket(family, kind)
    try:
        if ip.version == 4:
            sock.setsockopt(socket.IPPROTO_IP, _IP_FREEBIND, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_FREEBIND, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((str(ip), port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise RuntimeFailure(
            f"the shells' DNS resolver cannot listen on {ip} port {port}: {exc.strerror}"
        ) from exc
    return sock


def _refuse(query: dns.message.Message, response: dns.message.Message, why: str) -> None:
    response.set_rcode(dns.rcode.REFUSED)
    if query.edns >= 0:
        response.use_edns(
            0, payload=UPSTREAM_PAYLOAD, options=[dns.edns.EDEOption(dns.edns.EDECode.PROHIBITED, why)]
        )


def _format_error(wire: bytes) -> bytes | None:
    """FORMERR for a packet with a readable query header, nothing for anything shorter or a response."""
    if len(wire) < 12 or wire[2] & 0x80:
        return None
    flags = 0x8000 | (wire[2] & 0x79) << 8 | dns.rcode.FORMERR  # QR, the opcode and RD echoed
    return wire[:2] + struct.pack("!HHHHH", flags, 0, 0, 0, 0)


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True)
