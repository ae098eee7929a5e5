"""Which audit events webhooks hear, the signature, the back-off, and the addresses refused."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shells.domain.shell import EventRecord
from shells.domain.webhooks import forbidden_address, gives_up, retry_delay_s, sign, webhook_events
from shells.runtime.host.local_addresses import local_addresses

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def event(kind: str, action: str, outcome: str = "ok", door: str = "rest", **details: Any) -> EventRecord:
    return EventRecord(1, NOW, "t", "sh_x", "p", door, kind, action, outcome, "", details)


@pytest.mark.parametrize(
    ("rec", "name"),
    [
        (event("create", "create"), "created"),
        (event("create", "create", warm=True), "created running"),
        (event("create", "fork"), "created"),
        (event("state", "create", "running"), "running"),
        (event("action", "start", "running"), "running"),
        (event("action", "resume", "running"), "resumed"),
        (event("action", "pause", "paused", door="system"), "paused"),
        (event("action", "pause", "paused", door="system", cause="budget"), "budget_reached"),
        (event("state", "budget", "stopped", door="system"), "budget_reached"),
        (event("action", "stop", "stopped"), "stopped"),
        (event("state", "reconcile", "lost", door="system"), "lost"),
        (event("state", "create", "failed"), "failed"),
        (event("delete", "delete"), "deleted"),
        (event("exec", "exec", "0"), None),
        (event("action", "snapshot"), None),
        (event("state", "prewarm", "running", door="pool"), None),
    ],
)
def test_audit_events_map_to_webhook_events(rec: EventRecord, name: str | None) -> None:
    assert webhook_events(rec) == (tuple(name.split()) if name else ())


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"type":"created"}'
    want = hmac.new(b"k" * 16, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("k" * 16, 1700000000, body) == "v1=" + want
    assert sign("k" * 16, 1700000001, body) != sign("k" * 16, 1700000000, body)


def test_back_off_doubles_to_an_hour_and_gives_up_after_a_day() -> None:
    assert [retry_delay_s(n, 5.0) for n in (1, 2, 3)] == [5.0, 10.0, 20.0]
    assert retry_delay_s(50, 5.0) == retry_delay_s(10_000, 5.0) == 3600.0
    assert not gives_up(NOW, NOW + timedelta(hours=23))
    assert gives_up(NOW, NOW + timedelta(days=1))


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("169.254.169.254", True),
        ("fd00:ec2::254", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("169.254.1.1", True),
        ("fe80::1", True),
        ("0.0.0.0", True),
        ("224.0.0.1", True),
        ("10.99.0.7", True),  # the shells' range below
        ("192.0.2.50", True),  # this host's own address below
        ("198.51.100.11", False),
        ("10.1.2.3", False),  # a private network elsewhere is fine: self-hosted receivers live there
        ("2001:db8::1", False),
    ],
)
def test_forbidden_addresses(address: str, refused: bool) -> None:
    own: list[ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Network] = [
        ipaddress.IPv4Address("192.0.2.50"),
        ipaddress.IPv4Network("10.99.0.0/16"),
    ]
    assert (forbidden_address(ipaddress.ip_address(address), own) is not None) is refused


def test_local_addresses_read_the_kernels_tables(tmp_path: Path) -> None:
    (tmp_path / "fib_trie").write_text(
        "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 192.0.2.2\n        /32 host LOCAL\n"
        "     |-- 192.0.2.255\n        /32 link BROADCAST\n"
    )
    (tmp_path / "if_inet6").write_text("00000000000000000000000000000001 01 80 10 80       lo\n")
    assert local_addresses(tmp_path) == {ipaddress.ip_address("192.0.2.2"), ipaddress.ip_address("::1")}
    assert ipaddress.ip_address("127.0.0.1") in local_addresses()
