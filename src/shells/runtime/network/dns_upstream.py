"""The host's upstream DNS servers, and one forwarded lookup with TCP fallback and CNAME chasing.

The shells' resolver never relays a shell's packet: it sends a fresh query that carries only the
(lower-cased) question, with its own id, source port and EDNS options, so nothing a shell puts in
other sections, option fields or the case of the name reaches the upstream.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from shells.domain.errors import InvalidRequest, RuntimeFailure

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

UPSTREAM_TIMEOUT_S = 2.0
UPSTREAM_PAYLOAD = 1232
"""The EDNS buffer size DNS flag day 2020 settled on: no IP fragmentation on common paths."""
MAX_CNAME_HOPS = 8
ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)

SYSTEMD_RESOLVED_UPSTREAMS = Path("/run/systemd/resolve/resolv.conf")


@dataclass(frozen=True)
class Upstream:
    address: str
    port: int = 53


def host_upstreams(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[Upstream]:
    """The host's nameservers. A loopback stub (systemd-resolved's 127.0.0.53) is replaced by the
    servers behind it when systemd-resolved publishes them, since a stub may apply the host's own
    split-DNS view; other loopback servers (a local dnsmasq or unbound) are kept: the resolver runs in
    the host's network namespace, where they answer."""
    servers = nameservers(resolv_conf)
    if any(ipaddress.ip_address(s).is_loopback for s in servers) and SYSTEMD_RESOLVED_UPSTREAMS.exists():
        servers = [
            s for s in nameservers(SYSTEMD_RESOLVED_UPSTREAMS) if not ipaddress.ip_address(s).is_loopback
        ]
    if not servers:
        raise RuntimeFailure(
            f"No usable nameserver in {resolv_conf}: add one there, or give the shells' resolver its "
            "upstream servers explicitly."
        )
    return [Upstream(s) for s in servers]


def nameservers(path: Path) -> list[str]:
    """The ``nameserver`` addresses of a resolv.conf-style file (none if it cannot be read)."""
    found: list[str] = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            address = fields[1].partition("%")[0]  # drop an IPv6 zone index
            try:
                ipaddress.ip_address(address)
            except ValueError:
                continue
            found.append(address)
    return found


@dataclass
class Lookup:
    """What the upstream said about one question: the records on the way from the name to the answer
    (CNAMEs, then the asked type), with chains the upstream left unfinished followed."""

    rcode: dns.rcode.Rcode
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    addresses: list[IPAddress] = field(default_factory=list)
    """A/AAAA addresses at the end of the chain (for an A or AAAA question)."""


class UpstreamFailed(Exception):
    """No upstream server gave a usable answer."""


async def lookup(upstreams: list[Upstream], name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> Lookup:
    """Ask the upstreams about (``name``, ``rdtype``). Only records on the chain from ``name`` are
    kept (an upstream's extra records go no further). For A/AAAA a chain that ends in a CNAME without
    addresses is followed with further queries, up to ``MAX_CNAME_HOPS``. Raises ``UpstreamFailed``."""
    result = Lookup(dns.rcode.NOERROR)
    current, asked = name, {name}
    for _ in range(MAX_CNAME_HOPS):
        reply = await _ask(upstreams, current, rdtype)
        result.rcode = reply.rcode()
        if rdtype != dns.rdatatype.CNAME:
            current = _follow_cnames(reply, current, result.answer)
        final = reply.get_rrset(reply.answer, current, dns.rdataclass.IN, rdtype)
        if final is not None:
            result.answer.append(final)
            if rdtype in ADDRESS_TYPES:
                result.addresses = [ipaddress.ip_address(r.address) for r in final]
            return result
        if result.rcode != dns.rcode.NOERROR or rdtype not in ADDRESS_TYPES or current in asked:
            return result  # NXDOMAIN, NODATA, or a loop across replies
        asked.add(current)
    return result


def _follow_cnames(
    reply: dns.message.Message, start: dns.name.Name, into: list[dns.rrset.RRset]
) -> dns.name.Name:
    """Append the CNAME records of ``reply`` that lead on from ``start``; return where they end."""
    current, seen = start, {start}
    while (
        cname := reply.get_rrset(reply.answer, current, dns.rdataclass.IN, dns.rdatatype.CNAME)
    ) is not None:
        into.append(cname)
        current = cname[0].target
        if current in seen:
            break
        seen.add(current)
    return current


async def _ask(
    upstreams: list[Upstream], name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, use_edns=0, payload=UPSTREAM_PAYLOAD)
    query.flags |= dns.flags.RD
    for upstream in upstreams:
        try:
            reply = await dns.asyncquery.udp(query, upstream.address, UPSTREAM_TIMEOUT_S, upstream.port)
            if reply.flags & dns.flags.TC:
                reply = await dns.asyncquery.tcp(query, upstream.address, UPSTREAM_TIMEOUT_S, upstream.port)
        except (OSError, EOFError, dns.exception.DNSException):
            continue
        if reply.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED):
            continue
        return reply
    raise UpstreamFailed(f"no upstream answered {name} {dns.rdatatype.to_text(rdtype)}")


def configured_upstreams(configured: Sequence[str]) -> list[Upstream] | None:
    """``SHELLS_DNS_UPSTREAMS`` entries (``10.0.0.2``, ``127.0.0.1:5353``, ``[2001:db8::53]:53``) →
    upstream servers; None when nothing is configured (use the host's, ``host_upstreams``)."""
    found = []
    for text in configured:
        if text.startswith("["):
            host, _, port = text[1:].partition("]:")
            host = host.rstrip("]")
        elif text.count(":") == 1:
            host, _, port = text.partition(":")
        else:
            host, port = text, ""
        try:
            ipaddress.ip_address(host)
            found.append(Upstream(host, int(port or 53)))
        except ValueError:
            raise InvalidRequest(
                f"DNS upstream {text!r} is not an IP address or IP:PORT (SHELLS_DNS_UPSTREAMS)."
            ) from None
    return found or None
