"""Network modes, the policy a shell runs under, allow-list rules, private networks, blocked attempts.

An allow-list entry is one of (each optionally followed by ``:PORT`` and/or ``/tcp``, ``/udp``,
``/icmp``)::

    198.51.100.10            an IPv4 address           198.51.100.10:443/tcp
    198.51.100.0/24          an IPv4 network (CIDR)    198.51.100.0/24/udp
    [2001:db8::1]            an IPv6 address           [2001:db8::1]:443  (brackets needed with a port)
    2001:db8::/32            an IPv6 network           [2001:db8::/32]:53/udp
    pypi.org                 a host name               pypi.org:443
    *.example.org            every name below example.org (not example.org itself)

A port without a protocol means TCP and UDP; a protocol without a port means every port of it.
Parsing is pure and canonical: ``str(parse_allow_rule(text))`` is the form stored and shown.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from .errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_ALLOW_RULES = 256
"""Each rule becomes kernel set elements; a bound keeps a policy change one small transaction."""

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_PORT_SUFFIX = re.compile(r"^(?P<head>.*?):(?P<port>[0-9]+)$")
_FORMS = (
    "an IP address (198.51.100.10, [2001:db8::1]), a CIDR network (198.51.100.0/24), a host name "
    "(pypi.org) or a wildcard (*.example.org), optionally followed by :PORT and/or /tcp, /udp or /icmp"
)


class NetworkMode(StrEnum):
    SEALED = "sealed"  # no interface that works, not even loopback
    LOCALHOST = "localhost"  # loopback only (plus the shell's private networks)
    INTERNET = "internet"  # outbound through the host, optionally limited to an allowlist


class AllowKind(StrEnum):
    IP = "ip"
    CIDR = "cidr"
    HOST = "host"
    WILDCARD = "wildcard"


class Protocol(StrEnum):
    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"


@dataclass(frozen=True)
class AllowRule:
    """One parsed allow-list entry. ``target`` is canonical: a compressed address, a network with no
    host bits, or a lower-case name without a trailing dot (wildcards keep their ``*.``)."""

    kind: AllowKind
    target: str
    port: int | None = None
    protocol: Protocol | None = None

    @property
    def network(self) -> IPNetwork | None:
        """The destination network of an ``ip`` or ``cidr`` rule (a /32 or /128 for an address)."""
        if self.kind in (AllowKind.IP, AllowKind.CIDR):
            return ipaddress.ip_network(self.target)
        return None

    @property
    def protocols(self) -> tuple[Protocol, ...]:
        """The protocols the rule admits; empty means every protocol."""
        if self.protocol is not None:
            return (self.protocol,)
        return (Protocol.TCP, Protocol.UDP) if self.port is not None else ()

    def __str__(self) -> str:
        text = self.target
        if self.port is not None:
            text = f"[{text}]:{self.port}" if ":" in text else f"{text}:{self.port}"
        if self.protocol is not None:
            text = f"{text}/{self.protocol.value}"
        return text


def parse_allow_rule(text: str) -> AllowRule:
    """Parse one allow-list entry (see the module docstring); raises ``InvalidRequest`` saying why."""
    if not isinstance(text, str) or not text.strip():
        raise _bad(text, "it is empty")
    raw = text.strip()
    if "://" in raw:
        raise _bad(raw, "write the host name alone, not a URL")
    body, protocol = _split_protocol(raw)
    body, port = _split_port(raw, body)
    if port is not None and protocol is Protocol.ICMP:
        raise _bad(raw, "ICMP has no ports; drop the :PORT or use /tcp or /udp")
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    kind, target = _parse_target(raw, body)
    return AllowRule(kind, target, port, protocol)


def _split_protocol(raw: str) -> tuple[str, Protocol | None]:
    head, sep, tail = raw.rpartition("/")
    if sep and tail.lower() in {p.value for p in Protocol}:
        return head, Protocol(tail.lower())
    if sep and tail.isalpha():
        raise InvalidRequest(
            f"Allow-list entry {raw!r}: unknown protocol {tail!r}; use /tcp, /udp or /icmp.",
            {"field": "network.allow", "entry": raw},
        )
    return raw, None


def _split_port(raw: str, body: str) -> tuple[str, int | None]:
    if body.startswith("["):
        close = body.find("]")
        if close == -1:
            raise _bad(raw, "the '[' of an IPv6 address is never closed")
        rest = body[close + 1 :]
        if rest == "":
            return body, None
        if not rest.startswith(":") or not rest[1:].isdigit():
            raise _bad(raw, "after ']' only :PORT may follow")
        return body[: close + 1], _port(raw, rest[1:])
    match = _PORT_SUFFIX.match(body)
    if match is None or ":" in match["head"]:  # none, or a bare IPv6 address (needs brackets for a port)
        return body, None
    return match["head"], _port(raw, match["port"])


def _port(raw: str, digits: str) -> int:
    port = int(digits)
    if not 1 <= port <= 65535:
        raise _bad(raw, f"port {port} is outside 1-65535")
    return port


def _parse_target(raw: str, body: str) -> tuple[AllowKind, str]:
    if "/" in body:
        try:
            return AllowKind.CIDR, str(ipaddress.ip_network(body, strict=True))
        except ValueError:
            try:
                loose = ipaddress.ip_network(body, strict=False)
            except ValueError:
                raise _bad(raw, f"{body!r} is not a CIDR network") from None
            raise _bad(raw, f"{body!r} has host bits set; did you mean {loose}?") from None
    try:
        return AllowKind.IP, str(ipaddress.ip_address(body))
    except ValueError:
        pass
    name = body.lower().rstrip(".")
    wildcard = name.startswith("*.")
    labels = name[2:].split(".") if wildcard else name.split(".")
    if not name.isascii():
        raise _bad(raw, "international names must be written in their xn-- (IDNA) form")
    if "*" in (name[2:] if wildcard else name):
        raise _bad(raw, "a wildcard may only be the whole first label, as in *.example.org")
    if len(labels) < 2 or len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise _bad(raw, f"{body!r} is not a valid host name (letters, digits and '-', at least one dot)")
    if labels[-1].isdigit():
        raise _bad(raw, f"{body!r} is neither an IP address nor a host name")
    return (AllowKind.WILDCARD if wildcard else AllowKind.HOST), name


def _bad(raw: object, why: str) -> InvalidRequest:
    return InvalidRequest(
        f"Allow-list entry {raw!r} is not valid: {why}. Expected {_FORMS}.",
        {"field": "network.allow", "entry": raw},
    )


@dataclass(frozen=True)
class NetworkAccess:
    """A shell's network mode and, for ``internet``, its allow list (empty: every public address).

    ``allow`` holds the canonical text of each rule (the wire shape); ``rules`` the parsed rules.
    Constructing a policy validates it, so a bad entry never reaches a record or the host."""

    mode: NetworkMode = NetworkMode.SEALED
    allow: tuple[str, ...] = field(default_factory=tuple)
    rules: tuple[AllowRule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.allow and self.mode is not NetworkMode.INTERNET:
            raise InvalidRequest(
                f"An allow list only applies to mode 'internet', not {self.mode.value!r}.",
                {"field": "network.allow"},
            )
        if len(self.allow) > MAX_ALLOW_RULES:
            raise InvalidRequest(
                f"An allow list holds at most {MAX_ALLOW_RULES} entries, not {len(self.allow)}; "
                "use CIDR networks or wildcards to cover more.",
                {"field": "network.allow"},
            )
        rules = tuple(dict.fromkeys(parse_allow_rule(entry) for entry in self.allow))
        object.__setattr__(self, "rules", rules)
        object.__setattr__(self, "allow", tuple(str(rule) for rule in rules))

    @property
    def restricted(self) -> bool:
        """Whether outbound traffic is limited to the allow list."""
        return bool(self.rules)

    def to_dict(self) -> dict[str, object]:
        return {"mode": self.mode.value, "allow": list(self.allow)}


@dataclass(frozen=True)
class PrivateNetwork:
    """A network of shells: members reach each other by address and by name, and nothing else does."""

    id: str
    name: str
    cidr: ipaddress.IPv4Network
    taken: frozenset[ipaddress.IPv4Address] = field(default=frozenset(), compare=False)
    """Addresses its members hold on other nodes, which a node must not hand out (a cluster's
    control plane fills it in for a join or a start; not stored)."""

    def __post_init__(self) -> None:
        if not 16 <= self.cidr.prefixlen <= 29:
            raise InvalidRequest(
                f"A private network needs a CIDR between /16 and /29, not {self.cidr}.",
                {"field": "cidr"},
            )

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "cidr": str(self.cidr)}


@dataclass(frozen=True)
class BlockedAttempt:
    """Connection attempts a shell made that the host dropped, aggregated per destination.

    ``port`` is None for protocols without ports (ICMP). ``protocol`` is the IP protocol name
    (``tcp``, ``udp``, ``icmp``, ``ipv6-icmp``, …) or its number when it has no name."""

    destination: str
    port: int | None
    protocol: str
    count: int
    first_seen: datetime
    last_seen: datetime

    @property
    def key(self) -> tuple[str, int | None, str]:
        return (self.destination, self.port, self.protocol)

    def merged(self, later: BlockedAttempt) -> BlockedAttempt:
        """This record and a later one for the same destination, as one."""
        return BlockedAttempt(
            self.destination,
            self.port,
            self.protocol,
            self.count + later.count,
            min(self.first_seen, later.first_seen),
            max(self.last_seen, later.last_seen),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "port": self.port,
            "protocol": self.protocol,
            "count": self.count,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
        }
