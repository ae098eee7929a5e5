"""The dataplane's pure parts: addressing, allow-set elements, and reading drop counters."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest

from shells.domain.errors import InvalidRequest, QuotaExceeded
from shells.domain.network import NetworkAccess, NetworkMode, Protocol, parse_allow_rule
from shells.runtime.network.addressing import (
    InstanceRange,
    check_override,
    choose_range,
    lowest_free,
    parse_port_name,
    port_name,
)
from shells.runtime.network.blocked import counted_by_slot, growth
from shells.runtime.network.ruleset import Ruleset, allow_elements

N = ipaddress.IPv4Network
A = ipaddress.IPv4Address
NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_an_instance_range_splits_into_gateway_uplinks_and_network_pool() -> None:
    r = InstanceRange(N("10.200.0.0/16"))
    assert (r.gateway, r.uplink_address(0), r.uplink_address(1)) == (
        A("10.200.0.1"),
        A("10.200.0.2"),
        A("10.200.0.3"),
    )
    assert (r.uplinks, r.network_pool) == (N("10.200.0.0/17"), N("10.200.128.0/17"))
    assert r.slots == 32768 - 3
    assert r.free_network([N("10.200.128.0/24"), N("10.200.130.0/24")]) == N("10.200.129.0/24")
    small = InstanceRange(N("10.200.0.0/22"))
    assert small.free_network([]) == N("10.200.2.0/24")
    with pytest.raises(QuotaExceeded, match="private networks"):
        small.free_network([N("10.200.2.0/24"), N("10.200.3.0/24")])
    with pytest.raises(InvalidRequest, match=r"between /8 and /22"):
        InstanceRange(N("10.200.0.0/24"))


def test_the_default_range_is_stable_per_instance_and_skips_what_the_host_uses() -> None:
    first = choose_range("abcd1234", [])
    assert (
        first == choose_range("abcd1234", []) and first.prefixlen == 16 and first.subnet_of(N("10.128.0.0/9"))
    )
    assert choose_range("abcd1234", [first]) != first
    with pytest.raises(InvalidRequest, match="SHELLS_NETWORK_CIDR"):
        choose_range("abcd1234", [N("10.128.0.0/9")])
    with pytest.raises(InvalidRequest, match=r"overlaps 10\.0\.0\.0/8"):
        check_override(N("10.5.0.0/16"), [N("192.0.2.0/24"), N("10.0.0.0/8")])


def test_port_names_carry_the_instance_and_fit_an_interface_name() -> None:
    name = port_name("abcd1234", 4095, 15)
    assert len(name) <= 15 and name.startswith("shabcd1234")
    assert parse_port_name("abcd1234", name) == (4095, 15)
    assert parse_port_name("ffff0000", name) is None
    assert parse_port_name("abcd1234", "shabcd1234zzzzz") is None
    assert lowest_free([0, 1, 3], 0, 10, "slot") == 2
    with pytest.raises(QuotaExceeded, match="No free slot"):
        lowest_free([0, 1], 0, 2, "slot")


def test_allow_elements_group_by_shape_and_collapse_nested_networks() -> None:
    rules = NetworkAccess(
        NetworkMode.INTERNET,
        (
            "198.51.100.0/24",
            "198.51.100.7",  # inside the /24: collapsed away
            "203.0.113.0/25/udp",
            "203.0.113.5/udp",  # inside: collapsed
            "203.0.113.9:443",  # TCP and UDP
            "2001:db8::1",  # IPv6 is not routed: no element
            "pypi.org:443",  # names get elements when resolved
        ),
    ).rules
    elements = allow_elements(rules)
    assert elements.any == (N("198.51.100.0/24"),)
    assert elements.proto == ((N("203.0.113.0/25"), Protocol.UDP),)
    assert set(elements.port) == {
        (N("203.0.113.9/32"), Protocol.TCP, 443),
        (N("203.0.113.9/32"), Protocol.UDP, 443),
    }
    assert elements.holds(A("198.51.100.99"), None, None)
    assert elements.holds(A("203.0.113.9"), Protocol.TCP, 443)
    assert not elements.holds(A("203.0.113.9"), Protocol.TCP, 80)


def test_resolved_addresses_skip_what_static_elements_already_hold() -> None:
    rules = Ruleset("abcd1234", A("10.200.0.1"), N("10.200.0.0/16"))
    static = allow_elements(NetworkAccess(NetworkMode.INTERNET, ("198.51.100.0/24",)).rules)
    rule = parse_allow_rule("mirror.example.org")
    text = rules.resolved(3, rule, [A("198.51.100.4"), A("203.0.113.4")], 5, static)
    assert text == "add element inet shells_abcd1234 a3 { 203.0.113.4/32 . 0-255 timeout 30s }\n"
    assert rules.resolved(3, rule, [A("198.51.100.4")], 600, static) == ""
    ported = rules.resolved(
        3, parse_allow_rule("mirror.example.org:443/tcp"), [A("203.0.113.4")], 600, static
    )
    assert ported == "add element inet shells_abcd1234 p3 { 203.0.113.4/32 . tcp . 443 timeout 600s }\n"


def _set(name: str, elems: list[tuple[list[object], int, int | None]]) -> dict[str, object]:
    out = []
    for val, expires, packets in elems:
        elem: dict[str, object] = {"val": {"concat": val}, "expires": expires}
        if packets is not None:
            elem["counter"] = {"packets": packets, "bytes": 60 * packets}
        out.append({"elem": elem})
    return {"set": {"name": name, "elem": out}}


def test_drop_counters_become_attempts_with_first_and_last_times() -> None:
    sets = [
        _set("b7", [(["198.51.100.10", "tcp", 80], 3590, 4), (["198.51.100.11", "icmp", 0], 3599, 1)]),
        _set("f7", [(["198.51.100.10", "tcp", 80], 3500, None), (["198.51.100.11", "icmp", 0], 3599, None)]),
        _set("v7", [(["2001:db8::10", 6, 443], 3598, 2)]),
        _set("a7", [(["198.51.100.0/24"], 0, None)]),  # not a counting set
    ]
    counted = counted_by_slot(sets, NOW, 3600)
    assert list(counted) == [7]
    attempts, seen = growth(counted[7], {})
    by_dest = {a.destination: a for a in attempts}
    tcp = by_dest["198.51.100.10"]
    assert (tcp.port, tcp.protocol, tcp.count) == (80, "tcp", 4)
    assert (tcp.first_seen, tcp.last_seen) == (NOW - timedelta(seconds=100), NOW - timedelta(seconds=10))
    assert (by_dest["198.51.100.11"].port, by_dest["198.51.100.11"].protocol) == (None, "icmp")
    assert (by_dest["2001:db8::10"].protocol, by_dest["2001:db8::10"].count) == ("tcp", 2)
    # the next drain reports only the growth, and an element that expired and came back from zero
    later = counted_by_slot(
        [_set("b7", [(["198.51.100.10", "tcp", 80], 3600, 6), (["198.51.100.11", "icmp", 0], 3600, 1)])],
        NOW,
        3600,
    )
    again, _ = growth(later[7], {**seen, "198.51.100.11|icmp|None": 5})
    assert sorted((a.destination, a.count) for a in again) == [("198.51.100.10", 2), ("198.51.100.11", 1)]
    assert growth(counted[7], seen)[0] == []
