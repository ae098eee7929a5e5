"""The E2B door's domain mode (Host routing, the TLS settings it refuses) and the quota count a
fork's per-child results come from."""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path

import pytest

from shells.control.quotas import Quotas
from shells.domain.errors import InvalidRequest
from shells.domain.shapes import SHAPES
from shells.e2b.domain import SandboxHost, door_tls, routed_by_host, sandbox_host
from shells.settings import Settings
from shells.store.repository import Store
from tests.support.test_ca import issue

DOMAIN = "e2b.example.test"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (f"49983-abc123.{DOMAIN}", SandboxHost("49983", "abc123")),
        (f"8000-ABC123.{DOMAIN}:3443", SandboxHost("8000", "abc123")),
        (f"49983-abc123.{DOMAIN}.", SandboxHost("49983", "abc123")),
        (f"api.{DOMAIN}", None),
        (f"49983-abc.other.{DOMAIN}", None),
        (f"x-abc.{DOMAIN}", None),
        (f"49983-.{DOMAIN}", None),
        ("49983-abc.elsewhere.test", None),
        ("127.0.0.1:3000", None),
        ("", None),
    ],
)
def test_a_host_names_a_sandbox_and_port_only_directly_under_the_domain(
    host: str, expected: SandboxHost | None
) -> None:
    assert sandbox_host(host, DOMAIN) == expected


def test_the_host_wins_over_e2bs_routing_headers() -> None:
    scope = {
        "type": "http",
        "headers": [
            (b"host", f"49983-abc123.{DOMAIN}:3443".encode()),
            (b"e2b-sandbox-id", b"someoneelse"),
            (b"x-access-token", b"t"),
        ],
    }
    headers = routed_by_host(scope, DOMAIN)["headers"]
    assert [v for k, v in headers if k == b"e2b-sandbox-id"] == [b"abc123"]
    assert [v for k, v in headers if k == b"e2b-sandbox-port"] == [b"49983"]
    assert (b"x-access-token", b"t") in headers
    api = {"type": "http", "headers": [(b"host", f"api.{DOMAIN}".encode())]}
    assert routed_by_host(api, DOMAIN) is api


def test_domain_mode_needs_a_port_a_valid_domain_and_a_loadable_certificate(tmp_path: Path) -> None:
    tls = issue(tmp_path, (f"*.{DOMAIN}", f"api.{DOMAIN}"))
    good = Settings(data_dir=tmp_path, e2b_port=3443, e2b_domain=DOMAIN, e2b_tls_cert_file=tls.cert,
                    e2b_tls_key_file=tls.key)  # fmt: skip
    context = door_tls(good)
    assert isinstance(context, ssl.SSLContext)
    assert door_tls(replace(good, e2b_domain="")) is None
    for bad, says in [
        (replace(good, e2b_port=0), "--e2b-port"),
        (replace(good, e2b_domain="Not A Domain"), "SHELLS_E2B_DOMAIN"),
        (replace(good, e2b_tls_key_file=None), "SHELLS_E2B_TLS_KEY_FILE"),
        (replace(good, e2b_tls_key_file=tmp_path / "missing.key"), "could not be loaded"),
        (replace(good, e2b_tls_cert_file=tls.ca, e2b_tls_key_file=tls.key), "could not be loaded"),
    ]:
        with pytest.raises(InvalidRequest, match=says):
            door_tls(bad)


def test_fitting_counts_the_shells_that_fit_and_names_the_quota_of_the_rest(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, quota_max_shells=3, quota_max_vcpus=16)
    store = Store(f"sqlite:///{tmp_path / 'record.db'}")
    store.migrate()
    quotas = Quotas(settings, store)
    shape = SHAPES["s-1vcpu-512mb"]
    assert quotas.fitting("t", shape, 2) == (2, None)
    count, refused = quotas.fitting("t", shape, 5)
    assert count == 3 and refused is not None and refused.details["limit"] == "max_shells"
    small = Quotas(replace(settings, quota_max_vcpus=1.5), store)
    count, refused = small.fitting("t", SHAPES["s-2vcpu-2gb"], 2)
    assert count == 0 and refused is not None and refused.details["limit"] == "max_vcpus"
