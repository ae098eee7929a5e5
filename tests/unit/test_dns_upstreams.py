"""Parsing SHELLS_DNS_UPSTREAMS entries."""

from __future__ import annotations

import pytest

from shells.domain.errors import InvalidRequest
from shells.runtime.network.dns_upstream import Upstream, configured_upstreams


def test_addresses_with_and_without_ports() -> None:
    got = configured_upstreams(["10.0.0.2", "127.0.0.1:5353", "[2001:db8::53]:54", "2001:db8::1", "[::1]"])
    assert got == [
        Upstream("10.0.0.2", 53),
        Upstream("127.0.0.1", 5353),
        Upstream("2001:db8::53", 54),
        Upstream("2001:db8::1", 53),
        Upstream("::1", 53),
    ]


def test_nothing_configured_means_the_hosts_own() -> None:
    assert configured_upstreams([]) is None


@pytest.mark.parametrize("bad", ["dns.google", "10.0.0.2:port", "300.1.1.1", "[::1]:x"])
def test_a_bad_entry_says_what_to_write(bad: str) -> None:
    with pytest.raises(InvalidRequest, match="SHELLS_DNS_UPSTREAMS"):
        configured_upstreams([bad])
