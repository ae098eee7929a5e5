"""The shells' DNS resolver with real sockets against a real upstream DNS server run in the test.

The upstream (``tests/support/dns_zone_server.py``) serves a fixed zone for ``example.org``,
``*.example.org``, ``evil.test`` and a few more, and logs every query it receives: that log is how
the tests prove a refused name never left the host. Clients are real UDP/TCP sockets bound to
loopback source addresses that the test policy maps to shells.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import struct
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from shells.domain.errors import RuntimeFailure
from shells.runtime.network.dns_upstream import IPAddress, Upstream, host_upstreams
from shells.runtime.network.inside import socket_inside
from shells.runtime.network.resolver import (
    MAX_TTL_S,
    MIN_TTL_S,
    PEER_TTL_S,
    DnsResolver,
    Peer,
    name_matches,
)
from tests.support.dns_zone_server import ZoneServer
from tests.support.scratch_netns import scratch_netns
from tests.support.waiting import eventually

RESOLVER = "127.53.0.1"
UPSTREAM = "127.53.0.2"
LISTED = "127.53.0.10"  # an internet shell with an allowlist
OPEN = "127.53.0.11"  # an internet shell without one
ON_NETWORK = "127.53.0.12"  # a shell on the private network "lab"
STRANGER = "127.53.0.99"  # no shell has this address
WAIT_S = 5.0


def _free_port(address: str) -> int:
    """A port free for both UDP and TCP on ``address``."""
    while True:
        with socket.socket() as tcp:
            tcp.bind((address, 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((address, port))
                except OSError:
                    continue
                return port


@dataclass
class Recorder:
    """The test's ResolverPolicy: fixed clients, and every record call kept."""

    allow: dict[str, list[str]] = field(
        default_factory=lambda: {
            "sh-listed": ["api.example.org", "*.example.org", "missing.example.com"],
            "sh-open": ["*"],
            "sh-net": [],
        }
    )
    answers: list[tuple[str, list[str], str, list[IPAddress], int, float]] = field(default_factory=list)
    refusals: list[tuple[str, str, str]] = field(default_factory=list)
    answer_delay_s: float = 0.0
    fail_answers: bool = False

    def client_of(self, address: IPAddress) -> str | None:
        return {LISTED: "sh-listed", OPEN: "sh-open", ON_NETWORK: "sh-net"}.get(str(address))

    def allowed_names(self, client: str) -> Sequence[str]:
        return self.allow[client]

    def peers(self, client: str) -> Iterable[Peer]:
        if client != "sh-net":
            return []
        return [
            Peer("lab", "db", ipaddress.ip_address("10.77.0.2")),
            Peer("lab", "db", ipaddress.ip_address("fd00:77::2")),
            Peer("lab", "web", ipaddress.ip_address("10.77.0.3")),
        ]

    async def record_answer(
        self, client: str, patterns: Sequence[str], name: str, addresses: Sequence[IPAddress], ttl_s: int
    ) -> None:
        await asyncio.sleep(self.answer_delay_s)
        if self.fail_answers:
            raise RuntimeError("nft is broken")
        self.answers.append((client, list(patterns), name, list(addresses), ttl_s, time.monotonic()))

    async def record_refusal(self, client: str, name: str, qtype: str) -> None:
        self.refusals.append((client, name, qtype))


@dataclass
class World:
    resolver: DnsResolver
    upstream: ZoneServer
    policy: Recorder
    port: int

    async def ask(
        self, name: str, rdtype: str = "A", source: str = LISTED, *, tcp: bool = False, edns: bool = True
    ) -> dns.message.Message:
        query = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
        if tcp:
            return await dns.asyncquery.tcp(query, RESOLVER, WAIT_S, self.port, source=source)
        return await dns.asyncquery.udp(query, RESOLVER, WAIT_S, self.port, source=source)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    upstream = ZoneServer()
    upstream_port = _free_port(UPSTREAM)
    await upstream.start(UPSTREAM, upstream_port)
    policy = Recorder()
    port = _free_port(RESOLVER)
    resolver = DnsResolver(policy, [Upstream(UPSTREAM, upstream_port)], port=port)
    await resolver.listen(RESOLVER)
    try:
        yield World(resolver, upstream, policy, port)
    finally:
        await resolver.close()
        await upstream.close()


def _addresses(reply: dns.message.Message) -> list[str]:
    return sorted(
        r.to_text()
        for rrset in reply.answer
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
        for r in rrset
    )


def _ede(reply: dns.message.Message) -> list[dns.edns.EDEOption]:
    return [o for o in reply.options if isinstance(o, dns.edns.EDEOption)]


# Allowed names --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_allowed_name_resolves_and_its_addresses_are_recorded_before_the_answer(
    world: World,
) -> None:
    world.policy.answer_delay_s = 0.2
    reply = await world.ask("api.example.org")
    received = time.monotonic()
    assert reply.rcode() == dns.rcode.NOERROR
    assert _addresses(reply) == ["192.0.2.10"]
    [(client, patterns, name, addresses, ttl, recorded)] = world.policy.answers
    assert (client, patterns, name) == ("sh-listed", ["api.example.org", "*.example.org"], "api.example.org")
    assert addresses == [ipaddress.ip_address("192.0.2.10")]
    assert ttl == 300 == reply.answer[0].ttl
    assert recorded < received
    assert world.upstream.names() == ["api.example.org"]


@pytest.mark.anyio
async def test_aaaa_and_case_insensitive_names_and_a_wildcard_below_its_suffix(world: World) -> None:
    six = await world.ask("API.Example.ORG", "AAAA")
    assert _addresses(six) == ["2001:db8::10"]
    assert six.question[0].name.to_text() == "API.Example.ORG."  # the question comes back as asked
    deep = await world.ask("a.b.c.example.org")
    assert _addresses(deep) == ["192.0.2.99"]
    assert [a[1] for a in world.policy.answers] == [["api.example.org", "*.example.org"], ["*.example.org"]]
    # The upstream got fresh lower-case questions, not the client's packets.
    assert [e.name for e in world.upstream.log] == ["api.example.org", "a.b.c.example.org"]


@pytest.mark.anyio
async def test_a_wildcard_does_not_admit_its_apex_and_the_open_shell_gets_everything(world: World) -> None:
    apex = await world.ask("example.org")
    assert apex.rcode() == dns.rcode.REFUSED
    anything = await world.ask("evil.test", source=OPEN)
    assert _addresses(anything) == ["203.0.113.66"]
    assert world.upstream.names() == ["evil.test"]


@pytest.mark.anyio
async def test_cname_chains_are_followed_and_the_final_addresses_recorded(world: World) -> None:
    www = await world.ask("www.example.org")
    assert [r.rdtype for r in www.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert _addresses(www) == ["198.51.100.1", "198.51.100.2"]
    # The upstream stopped at the CNAME: the resolver asks for the target itself.
    partial = await world.ask("partial.example.org")
    assert _addresses(partial) == ["198.51.100.7"]
    assert world.upstream.names()[-2:] == ["partial.example.org", "edge.cdn.test"]
    recorded = {a[2]: (sorted(map(str, a[3])), a[4]) for a in world.policy.answers}
    # TTL: the smallest along the chain (the CNAME's 600 vs the address's 120 / 60).
    assert recorded == {
        "www.example.org": (["198.51.100.1", "198.51.100.2"], 120),
        "partial.example.org": (["198.51.100.7"], 60),
    }
    assert {rrset.ttl for rrset in partial.answer} == {60}


@pytest.mark.anyio
async def test_a_cname_loop_ends_without_addresses(world: World) -> None:
    reply = await world.ask("loop.example.org")
    assert reply.rcode() == dns.rcode.NOERROR and _addresses(reply) == []
    assert world.policy.answers == []
    assert len(world.upstream.log) <= 2


@pytest.mark.anyio
async def test_ttls_are_clamped_for_the_client_and_the_hook_alike(world: World) -> None:
    short = await world.ask("anything.example.org")  # the wildcard's TTL is 5
    long = await world.ask("long.example.org")  # 86400
    assert short.answer[0].ttl == MIN_TTL_S and long.answer[0].ttl == MAX_TTL_S
    assert [a[4] for a in world.policy.answers] == [MIN_TTL_S, MAX_TTL_S]


@pytest.mark.anyio
async def test_other_types_and_missing_names_are_forwarded_without_recording(world: World) -> None:
    txt = await world.ask("txt.example.org", "TXT")
    assert txt.answer[0][0].to_text() == '"hello from the zone"'
    missing = await world.ask("missing.example.com")
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert world.policy.answers == [] and world.policy.refusals == []


@pytest.mark.anyio
async def test_big_answers_use_tcp_upstream_and_truncate_to_the_client(world: World) -> None:
    udp = await world.ask("big.example.org", edns=False)  # 512-byte buffer
    assert udp.flags & dns.flags.TC and udp.answer == []
    # The upstream truncated its UDP reply too, so the resolver retried over TCP.
    assert [(e.transport, e.name) for e in world.upstream.log] == [
        ("udp", "big.example.org"),
        ("tcp", "big.example.org"),
    ]
    tcp = await world.ask("big.example.org", tcp=True)
    assert len(_addresses(tcp)) == 100
    assert len(world.policy.answers[-1][3]) == 100


# Refusals and exfiltration --------------------------------------------------------------------------


CRAFTED = [
    "c2VjcmV0LWRhdGE.evil.test",  # the classic: data in a label of the attacker's domain
    "api.example.org.evil.test",  # an allowed name as a prefix
    "evilexample.org",  # the suffix without the label boundary
    "secret\\.example.org",  # one label that holds a dot
    "example.org",  # the apex of a wildcard
]


@pytest.mark.anyio
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_crafted_names_from_an_allowlisted_shell_are_refused_and_never_leave(
    world: World, tcp: bool
) -> None:
    for name in CRAFTED:
        reply = await world.ask(name, tcp=tcp)
        assert reply.rcode() == dns.rcode.REFUSED, name
        assert [o.code for o in _ede(reply)] == [dns.edns.EDECode.PROHIBITED]
        assert reply.answer == []
    assert world.upstream.log == []
    await eventually(  # refusals are recorded after the answer
        lambda: len(world.policy.refusals) == len(CRAFTED), timeout_s=5, what="every refusal recorded"
    )
    assert [r[1] for r in world.policy.refusals] == [
        dns.name.from_text(n).canonicalize().to_text(omit_final_dot=True) for n in CRAFTED
    ]
    assert {(r[0], r[2]) for r in world.policy.refusals} == {("sh-listed", "A")}
    assert world.policy.answers == []


@pytest.mark.anyio
async def test_zone_transfers_and_any_are_refused_even_for_allowed_names(world: World) -> None:
    assert (await world.ask("api.example.org", "ANY")).rcode() == dns.rcode.REFUSED
    assert (await world.ask("api.example.org", "AXFR", tcp=True)).rcode() == dns.rcode.REFUSED
    assert world.upstream.log == []


@pytest.mark.anyio
async def test_an_unknown_source_is_refused_and_nothing_goes_upstream(world: World) -> None:
    for name in ("api.example.org", "data.evil.test"):
        assert (await world.ask(name, source=STRANGER)).rcode() == dns.rcode.REFUSED
        assert (await world.ask(name, source=STRANGER, tcp=True)).rcode() == dns.rcode.REFUSED
    assert world.upstream.log == []
    assert world.policy.refusals == []  # no shell to blame


@pytest.fixture
def sealed_netns() -> Iterator[Path]:
    with scratch_netns(loopback=False, prefix="shells-test-dns-") as path:
        yield path


@pytest.mark.anyio
async def test_a_sealed_shell_cannot_send_a_crafted_query_at_all(world: World, sealed_netns: Path) -> None:
    """From inside a sealed namespace the query does not even leave: no route, not even loopback."""
    query = dns.message.make_query("c2VjcmV0.evil.test", "A").to_wire()
    udp = await socket_inside(str(sealed_netns), kind=socket.SOCK_DGRAM)
    with udp, pytest.raises(OSError) as sent:
        udp.sendto(query, (RESOLVER, world.port))
    assert sent.value.errno == errno.ENETUNREACH
    tcp = await socket_inside(str(sealed_netns))
    with tcp, pytest.raises(OSError) as connected:
        await asyncio.get_running_loop().sock_connect(tcp, (RESOLVER, world.port))
    assert connected.value.errno == errno.ENETUNREACH
    await asyncio.sleep(0.1)
    assert world.upstream.log == [] and world.policy.refusals == []


# Private networks -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_peers_answer_by_name_and_by_name_dot_network_locally(world: World) -> None:
    short = await world.ask("db", source=ON_NETWORK)
    qualified = await world.ask("WEB.lab", source=ON_NETWORK)
    six = await world.ask("db.lab", "AAAA", source=ON_NETWORK)
    assert _addresses(short) == ["10.77.0.2"] and short.answer[0].ttl == PEER_TTL_S
    assert _addresses(qualified) == ["10.77.0.3"]
    assert _addresses(six) == ["fd00:77::2"]
    nodata = await world.ask("web", "AAAA", source=ON_NETWORK)
    assert nodata.rcode() == dns.rcode.NOERROR and nodata.answer == []
    # Not visible to shells off the network, and nothing else resolves for a shell with no list.
    assert (await world.ask("db", source=LISTED)).rcode() == dns.rcode.REFUSED
    assert (await world.ask("api.example.org", source=ON_NETWORK)).rcode() == dns.rcode.REFUSED
    assert world.upstream.log == []


# Robustness -----------------------------------------------------------------------------------------


def _raw_udp(payload: bytes, port: int, source: str = LISTED) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(0.3)
        sock.sendto(payload, (RESOLVER, port))
        try:
            return sock.recv(4096)
        except TimeoutError:
            return None


@pytest.mark.anyio
async def test_garbage_never_stops_the_server(world: World) -> None:
    valid = dns.message.make_query("api.example.org", "A").to_wire()
    formerr, silence = dns.rcode.FORMERR, None
    garbage = [
        (b"", silence),
        (b"\x00", silence),
        (b"\x01\x02" + b"\x01" * 9, silence),  # shorter than a header
        (valid[:12], formerr),  # a header that promises a question
        (valid[:-3], formerr),  # a question cut short
        (valid[:12] + b"\xc0\x0c" + valid[14:], formerr),  # a compression pointer to itself
        (valid + b"\x00" * 3000, formerr),  # trailing junk
        (bytes(range(256)) * 2, formerr),
    ]
    loop = asyncio.get_running_loop()
    for payload, expected in garbage:
        reply = await loop.run_in_executor(None, _raw_udp, payload, world.port)
        if expected is silence:
            assert reply is None
        else:
            assert reply is not None and reply[:2] == payload[:2] and reply[2] & 0x80  # QR
            assert reply[3] & 0x0F == expected
    # A response sent to the resolver is never answered (no reflection).
    response = dns.message.make_response(dns.message.make_query("api.example.org", "A")).to_wire()
    assert await loop.run_in_executor(None, _raw_udp, response, world.port) is None
    # TCP: a length prefix that lies, then a closed connection.
    reader, writer = await asyncio.open_connection(RESOLVER, world.port, local_addr=(LISTED, 0))
    writer.write(struct.pack("!H", 400) + b"short")
    writer.write_eof()
    async with asyncio.timeout(WAIT_S):
        assert await reader.read() == b""
    writer.close()
    # Still serving.
    assert _addresses(await world.ask("api.example.org")) == ["192.0.2.10"]


@pytest.mark.anyio
async def test_a_failing_hook_or_upstream_is_servfail_not_an_unchecked_answer(world: World) -> None:
    world.policy.fail_answers = True
    reply = await world.ask("api.example.org")
    assert reply.rcode() == dns.rcode.SERVFAIL and reply.answer == []
    await world.upstream.close()
    world.policy.fail_answers = False
    started = time.monotonic()
    down = await world.ask("txt.example.org", "TXT", tcp=True)
    assert down.rcode() == dns.rcode.SERVFAIL
    assert time.monotonic() - started < WAIT_S


@pytest.mark.anyio
async def test_listen_before_the_address_exists_and_stop_listening(world: World) -> None:
    """IP_FREEBIND: the resolver can listen on a gateway address before its bridge has it."""
    absent = "198.18.0.53"
    await world.resolver.listen(absent)
    await world.resolver.stop_listening(absent)
    await world.resolver.stop_listening(RESOLVER)
    with pytest.raises(dns.exception.Timeout):
        await dns.asyncquery.udp(dns.message.make_query("api.example.org", "A"), RESOLVER, 0.3, world.port)


def test_listening_on_a_taken_port_is_a_runtime_failure() -> None:
    async def clash() -> None:
        port = _free_port(RESOLVER)
        first = DnsResolver(Recorder(), [Upstream(UPSTREAM)], port=port)
        second = DnsResolver(Recorder(), [Upstream(UPSTREAM)], port=port)
        await first.listen(RESOLVER)
        try:
            with pytest.raises(RuntimeFailure, match="cannot listen"):
                await second.listen(RESOLVER)
        finally:
            await first.close()

    asyncio.run(clash())


# Pure logic -----------------------------------------------------------------------------------------


def test_name_patterns() -> None:
    def ok(pattern: str, name: str) -> bool:
        return name_matches(pattern, dns.name.from_text(name))

    assert ok("api.example.org", "API.example.org")
    assert not ok("api.example.org", "x.api.example.org")
    assert ok("*.example.org", "a.example.org") and ok("*.example.org", "a.b.example.org")
    assert not ok("*.example.org", "example.org")
    assert not ok("*.example.org", "badexample.org")
    assert not ok("*.example.org", "a\\.example.org")  # "a.example" + "org": not below example.org
    assert ok("*", "anything.at.all")
    assert not ok("bad..pattern", "bad..pattern".replace("..", "."))


def test_host_upstreams_reads_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch lan\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nnameserver bogus\n")
    assert host_upstreams(conf) == [Upstream("10.0.0.1"), Upstream("fe80::1")]
    conf.write_text("search lan\n")
    with pytest.raises(RuntimeFailure, match="No usable nameserver"):
        host_upstreams(conf)
