"""Settings: each field's variable and parsing follow from the field; the ingress port is chosen."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import fields
from decimal import Decimal
from pathlib import Path

import pytest

from shells.domain.errors import InvalidRequest
from shells.server import choose_ingress_port
from shells.settings import Settings, env_var


def test_every_field_is_read_from_its_own_variable_with_its_type(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "SHELLS_PORT": "9000",
        "SHELLS_BTRFS_DIR": "/srv/pool",
        "SHELLS_RATE_GIB_HOUR": "0.5",
        "SHELLS_BUDGET_CHECK_S": "2.5",
        "SHELLS_NETWORK_CIDR": "10.200.0.0/16",
        "SHELLS_DNS_UPSTREAMS": "192.0.2.1, 192.0.2.2:5353,",
        "SHELLS_INGRESS_PORT": "7001",
        "SHELLS_AGENT_READY_TIMEOUT_S": "3",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    s = Settings.from_env(host="0.0.0.0", port=None)
    assert (s.port, s.host, s.btrfs_dir, s.ingress_port) == (9000, "0.0.0.0", Path("/srv/pool"), 7001)
    assert (s.rate_gib_hour, s.budget_check_s, s.agent_ready_timeout_s) == (Decimal("0.5"), 2.5, 3.0)
    assert s.network_cidr == ipaddress.IPv4Network("10.200.0.0/16")
    assert s.dns_upstreams == ("192.0.2.1", "192.0.2.2:5353")
    assert {env_var(f.name) for f in fields(Settings)} >= set(values)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("SHELLS_PORT", "eighty", "a whole number"),
        ("SHELLS_QUOTA_MAX_VCPUS", "many", "a number"),
        ("SHELLS_FREE_TIER_USD", "1,5", "a decimal number"),
        ("SHELLS_NETWORK_CIDR", "10.0.0.1/40", "an IPv4 network"),
    ],
)
def test_a_value_that_does_not_parse_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidRequest) as refused:
        Settings.from_env()
    assert refused.value.message.startswith(f"{variable} must be {says}")
    assert refused.value.message.endswith(f"not {value!r}.")


def taken() -> socket.socket:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    return held


def test_the_ingress_port_is_the_api_port_plus_one_or_any_free_one_when_that_is_taken() -> None:
    with taken() as held:
        port = held.getsockname()[1]
        assert choose_ingress_port(Settings(port=port)) == port + 1 or port + 1 > 65535
        beside_taken = choose_ingress_port(Settings(port=port - 1))
        assert beside_taken not in (port, 0)


def test_an_ingress_port_set_but_taken_is_refused_with_a_sentence_naming_the_setting() -> None:
    with taken() as held:
        port = held.getsockname()[1]
        with pytest.raises(InvalidRequest) as refused:
            choose_ingress_port(Settings(ingress_port=port))
    assert "SHELLS_INGRESS_PORT" in refused.value.message and str(port) in refused.value.message
