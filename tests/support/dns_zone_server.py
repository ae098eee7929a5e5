"""A small recursive-resolver stand-in for the DNS tests: a fixed zone, UDP and TCP, a query log.

    python -m tests.support.dns_zone_server ADDRESS PORT     (prints ``ready`` once listening)

It answers the way a recursive resolver would: CNAME chains are followed inside the reply (except for
names in ``UNFINISHED``, whose reply stops at the CNAME), ``*.`` names synthesise answers for names
below them, unknown names are NXDOMAIN, and a UDP reply larger than the asker's buffer is truncated
(TC set) so the asker must retry over TCP. Every query it receives is appended to ``log``.
"""

from __future__ import annotations

import asyncio
import struct
import sys
import threading
from dataclasses import dataclass, field
from typing import Self, cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

A, AAAA, CNAME, TXT = dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.CNAME, dns.rdatatype.TXT

ZONE: dict[str, list[tuple[dns.rdatatype.RdataType, int, list[str]]]] = {
    "example.org": [(A, 300, ["192.0.2.1"])],
    "api.example.org": [(A, 300, ["192.0.2.10"]), (AAAA, 300, ["2001:db8::10"])],
    "*.example.org": [(A, 5, ["192.0.2.99"])],
    "long.example.org": [(A, 86400, ["192.0.2.20"])],
    "www.example.org": [(CNAME, 600, ["cdn.example.net."])],
    "cdn.example.net": [(A, 120, ["198.51.100.1", "198.51.100.2"])],
    "partial.example.org": [(CNAME, 600, ["edge.cdn.test."])],
    "edge.cdn.test": [(A, 60, ["198.51.100.7"])],
    "loop.example.org": [(CNAME, 600, ["loop2.example.org."])],
    "loop2.example.org": [(CNAME, 600, ["loop.example.org."])],
    "big.example.org": [(A, 300, [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(100)])],
    "txt.example.org": [(TXT, 300, ['"hello from the zone"'])],
    "evil.test": [(A, 300, ["203.0.113.66"])],
    "*.evil.test": [(A, 300, ["203.0.113.66"])],
}
UNFINISHED = {"partial.example.org"}


@dataclass(frozen=True)
class Logged:
    transport: str
    name: str
    """As received (case kept), without the final dot."""
    rdtype: str
    wire: bytes


@dataclass
class ZoneServer:
    zone: dict[str, list[tuple[dns.rdatatype.RdataType, int, list[str]]]] = field(
        default_factory=lambda: ZONE
    )
    log: list[Logged] = field(default_factory=list)
    _udp: asyncio.DatagramTransport | None = None
    _tcp: asyncio.Server | None = None

    def names(self) -> list[str]:
        return [entry.name.lower() for entry in self.log]

    async def start(self, address: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self), local_addr=(address, port), reuse_port=False
        )
        self._tcp = await asyncio.start_server(self._serve_tcp, address, port)

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()

    def reply(self, wire: bytes, transport: str) -> bytes:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        self.log.append(
            Logged(
                transport,
                question.name.to_text(omit_final_dot=True),
                dns.rdatatype.to_text(question.rdtype),
                wire,
            )
        )
        response = dns.message.make_response(query, recursion_available=True)
        name = question.name.canonicalize()
        seen = {name}
        while True:
            records = _records(self.zone, name)
            if records is None:
                if not response.answer:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                break
            wanted = [r for r in records if r[0] == question.rdtype]
            cname = [r for r in records if r[0] == CNAME]
            for rdtype, ttl, values in wanted or cname:
                response.answer.append(dns.rrset.from_text_list(name, ttl, "IN", rdtype, values))
            if wanted or not cname or name.to_text(omit_final_dot=True) in UNFINISHED:
                break
            name = dns.name.from_text(cname[0][2][0])
            if name in seen:
                break  # a loop
            seen.add(name)
        if transport == "tcp":
            return response.to_wire(max_size=65535)
        limit = query.payload if query.edns >= 0 else 512
        return response.to_wire(max_size=limit, prefer_truncation=True)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (size,) = struct.unpack("!H", await reader.readexactly(2))
                answer = self.reply(await reader.readexactly(size), "tcp")
                writer.write(struct.pack("!H", len(answer)) + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writer.close()


def _records(
    zone: dict[str, list[tuple[dns.rdatatype.RdataType, int, list[str]]]], name: dns.name.Name
) -> list[tuple[dns.rdatatype.RdataType, int, list[str]]] | None:
    text = name.to_text(omit_final_dot=True)
    if text in zone:
        return zone[text]
    labels = text.split(".")
    for i in range(1, len(labels)):
        wildcard = "*." + ".".join(labels[i:])
        if wildcard in zone:
            return zone[wildcard]
    return None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: ZoneServer) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)  # not a subclass in 3.11

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self._transport is not None
        self._transport.sendto(self._server.reply(data, "udp"), addr)


class ThreadedZone:
    """A ``ZoneServer`` for ``zone`` on ``address:port``, on its own event loop in a thread (for tests
    that are not async); use it as a context manager."""

    def __init__(
        self, zone: dict[str, list[tuple[dns.rdatatype.RdataType, int, list[str]]]], address: str, port: int
    ) -> None:
        self.address, self.port = address, port
        self.server = ZoneServer(zone=zone)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(self.address, self.port), self.loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


async def main(address: str, port: int) -> None:
    server = ZoneServer()
    await server.start(address, port)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
