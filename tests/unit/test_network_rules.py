"""Allow-list parsing, network policies and the other network value types. Pure."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest

from shells.domain.errors import InvalidRequest
from shells.domain.network import (
    MAX_ALLOW_RULES,
    AllowKind,
    AllowRule,
    BlockedAttempt,
    NetworkAccess,
    NetworkMode,
    PrivateNetwork,
    Protocol,
    parse_allow_rule,
)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("198.51.100.10", AllowRule(AllowKind.IP, "198.51.100.10")),
        ("198.51.100.10:443", AllowRule(AllowKind.IP, "198.51.100.10", 443)),
        ("198.51.100.10/udp", AllowRule(AllowKind.IP, "198.51.100.10", None, Protocol.UDP)),
        ("198.51.100.10:53/UDP", AllowRule(AllowKind.IP, "198.51.100.10", 53, Protocol.UDP)),
        ("198.51.100.0/24", AllowRule(AllowKind.CIDR, "198.51.100.0/24")),
        ("198.51.100.0/24:443", AllowRule(AllowKind.CIDR, "198.51.100.0/24", 443)),
        ("198.51.100.0/24/tcp", AllowRule(AllowKind.CIDR, "198.51.100.0/24", None, Protocol.TCP)),
        ("203.0.113.0/24:443/tcp", AllowRule(AllowKind.CIDR, "203.0.113.0/24", 443, Protocol.TCP)),
        ("10.0.0.0/8/icmp", AllowRule(AllowKind.CIDR, "10.0.0.0/8", None, Protocol.ICMP)),
        ("2001:db8::1", AllowRule(AllowKind.IP, "2001:db8::1")),
        ("[2001:DB8:0::1]", AllowRule(AllowKind.IP, "2001:db8::1")),
        ("[2001:db8::1]:443", AllowRule(AllowKind.IP, "2001:db8::1", 443)),
        ("[2001:db8::1]:443/tcp", AllowRule(AllowKind.IP, "2001:db8::1", 443, Protocol.TCP)),
        ("2001:db8::/32", AllowRule(AllowKind.CIDR, "2001:db8::/32")),
        ("[2001:db8::/32]:53/udp", AllowRule(AllowKind.CIDR, "2001:db8::/32", 53, Protocol.UDP)),
        ("PyPI.org.", AllowRule(AllowKind.HOST, "pypi.org")),
        ("files.pythonhosted.org:443", AllowRule(AllowKind.HOST, "files.pythonhosted.org", 443)),
        ("deb.debian.org:80/tcp", AllowRule(AllowKind.HOST, "deb.debian.org", 80, Protocol.TCP)),
        ("*.example.org", AllowRule(AllowKind.WILDCARD, "*.example.org")),
        ("*.Example.org:443", AllowRule(AllowKind.WILDCARD, "*.example.org", 443)),
        ("  xn--bcher-kva.example  ", AllowRule(AllowKind.HOST, "xn--bcher-kva.example")),
    ],
)
def test_allow_entries_parse_to_canonical_rules(text: str, rule: AllowRule) -> None:
    assert parse_allow_rule(text) == rule
    assert parse_allow_rule(str(rule)) == rule  # the canonical text parses back to the same rule


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("https://pypi.org", "not a URL"),
        ("pypi.org/simple", "unknown protocol 'simple'"),
        ("198.51.100.10/gre", "unknown protocol 'gre'"),
        ("198.51.100.10:0", "outside 1-65535"),
        ("198.51.100.10:70000", "outside 1-65535"),
        ("198.51.100.5/24", "host bits set; did you mean 198.51.100.0/24?"),
        ("198.51.100.0/33", "not a CIDR network"),
        ("300.1.2.3", "neither an IP address nor a host name"),
        ("1.2.3", "neither an IP address nor a host name"),
        ("localhost", "at least one dot"),
        ("bad_name.example.org", "not a valid host name"),
        ("-bad.example.org", "not a valid host name"),
        ("a..b.org", "not a valid host name"),
        ("bücher.example", "xn--"),
        ("foo.*.example.org", "whole first label"),
        ("*example.org", "whole first label"),
        ("[2001:db8::1", "never closed"),
        ("[2001:db8::1]x", "only :PORT may follow"),
        ("198.51.100.10:53/icmp", "ICMP has no ports"),
        ("example.org:", "not a valid host name"),
    ],
)
def test_bad_allow_entries_say_what_is_wrong_and_what_is_expected(text: str, says: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_allow_rule(text)
    assert says in info.value.message
    assert info.value.details["field"] == "network.allow"
    if "unknown protocol" not in says:
        assert "Expected an IP address" in info.value.message


def test_rule_shapes_expose_networks_and_protocols() -> None:
    assert parse_allow_rule("198.51.100.10").network == ipaddress.ip_network("198.51.100.10/32")
    assert parse_allow_rule("pypi.org").network is None
    assert parse_allow_rule("pypi.org").protocols == ()
    assert parse_allow_rule("pypi.org:443").protocols == (Protocol.TCP, Protocol.UDP)
    assert parse_allow_rule("pypi.org:443/udp").protocols == (Protocol.UDP,)


def test_a_policy_keeps_canonical_deduplicated_entries_and_its_wire_shape() -> None:
    policy = NetworkAccess(NetworkMode.INTERNET, ("PyPI.org", "pypi.org.", "198.51.100.10:443/TCP"))
    assert policy.allow == ("pypi.org", "198.51.100.10:443/tcp")
    assert [r.kind for r in policy.rules] == [AllowKind.HOST, AllowKind.IP]
    assert policy.to_dict() == {"mode": "internet", "allow": ["pypi.org", "198.51.100.10:443/tcp"]}
    assert policy == NetworkAccess(NetworkMode.INTERNET, ("pypi.org", "198.51.100.10:443/tcp"))
    assert policy.restricted and not NetworkAccess(NetworkMode.INTERNET).restricted


def test_a_policy_refuses_bad_entries_a_list_outside_internet_and_too_many_entries() -> None:
    with pytest.raises(InvalidRequest, match="not valid"):
        NetworkAccess(NetworkMode.INTERNET, ("pypi.org", "not a host"))
    with pytest.raises(InvalidRequest, match="only applies to mode 'internet'"):
        NetworkAccess(NetworkMode.LOCALHOST, ("pypi.org",))
    many = tuple(f"198.51.100.{i}" for i in range(MAX_ALLOW_RULES + 1))
    with pytest.raises(InvalidRequest, match=f"at most {MAX_ALLOW_RULES}"):
        NetworkAccess(NetworkMode.INTERNET, many)


def test_a_private_network_needs_a_sensible_prefix() -> None:
    net = PrivateNetwork("n1", "db", ipaddress.IPv4Network("10.9.0.0/24"))
    assert net.to_dict() == {"id": "n1", "name": "db", "cidr": "10.9.0.0/24"}
    for bad in ("10.0.0.0/8", "10.9.0.0/30"):
        with pytest.raises(InvalidRequest, match="between /16 and /29"):
            PrivateNetwork("n2", "x", ipaddress.IPv4Network(bad))


def test_blocked_attempts_merge_per_destination() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    first = BlockedAttempt("198.51.100.10", 80, "tcp", 3, t0, t0 + timedelta(seconds=5))
    later = BlockedAttempt(
        "198.51.100.10", 80, "tcp", 2, t0 + timedelta(seconds=9), t0 + timedelta(seconds=12)
    )
    merged = first.merged(later)
    assert (merged.count, merged.first_seen, merged.last_seen) == (5, t0, t0 + timedelta(seconds=12))
    assert merged.key == ("198.51.100.10", 80, "tcp")
    assert merged.to_dict()["first_seen"] == t0.isoformat()
