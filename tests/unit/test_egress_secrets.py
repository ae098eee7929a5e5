"""The pure parts of secrets brokered at egress: names and host patterns, the ClientHello's SNI,
placeholder substitution in a request head, sealing with a key outside the database."""

from __future__ import annotations

import base64
import os
import ssl
import stat
from pathlib import Path

import pytest

from shells.control.secret_box import SecretBox, load_or_create_key
from shells.domain.errors import InvalidRequest, RuntimeFailure
from shells.domain.secrets import Brokered, host_matches, parse_hosts
from shells.runtime.network.headsub import substitute
from shells.runtime.network.tlshello import record_length, server_name

PH = "shells-secret-" + "ab" * 24
SECRET = Brokered("TOKEN", ("api.example.org",), None, PH, "v&1 x")


@pytest.mark.parametrize("hosts", [[], ["*"], ["*."], ["10.0.0.1"], ["a.*.org"], ["localhost"], "x.org", [1]])
def test_a_secret_needs_named_hosts(hosts: object) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_hosts(hosts)
    assert err.value.details == {"field": "hosts"}


def test_host_patterns() -> None:
    assert parse_hosts(["API.Example.org.", "*.example.org", "api.example.org"]) == (
        "api.example.org",
        "*.example.org",
    )
    assert host_matches("*.example.org", "a.b.example.org")
    assert not host_matches("*.example.org", "example.org")
    assert not host_matches("*.example.org", "badexample.org")
    assert not host_matches("api.example.org", "api.example.org.evil.net")


def _hello(name: str | None) -> bytes:
    """A real ClientHello, from OpenSSL through memory BIOs."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_the_sni_of_a_real_client_hello() -> None:
    hello = _hello("API.example.org")
    length = record_length(hello[:5])
    assert length is not None and len(hello) == 5 + length
    assert server_name(hello) == "api.example.org"
    assert server_name(_hello(None)) is None
    assert server_name(hello[:60]) is None  # cut short: no name, passed through
    assert record_length(b"GET / HTTP/1.1\r\n") is None


def test_placeholders_are_swapped_in_headers_basic_auth_and_query_only_for_the_host() -> None:
    basic = base64.b64encode(f"me:{PH}".encode()).decode()
    head = (
        f"GET /x?key={PH}&n=1 HTTP/1.1\r\nHost: api.example.org:443\r\nAuthorization: Bearer {PH}\r\n"
        f"Proxy-Authorization: Basic {basic}\r\nConnection: keep-alive\r\n\r\n"
    ).encode()
    out, used = substitute(head, "api.example.org", [SECRET])
    assert used == ["TOKEN"]
    assert b"key=v%261%20x&n=1" in out
    assert b"Authorization: Bearer v&1 x\r\n" in out
    assert b"Basic " + base64.b64encode(b"me:v&1 x") in out
    assert PH.encode() not in out
    assert out.endswith(b"Connection: close\r\n\r\n") and b"keep-alive" not in out
    # another Host than the name the TLS client asked for: nothing swapped
    other = head.replace(b"Host: api.example.org:443", b"Host: evil.example.net")
    assert substitute(other, "api.example.org", [SECRET]) == (other, [])
    twice = head.replace(b"\r\n\r\n", b"\r\nHost: evil.example.net\r\n\r\n")
    assert substitute(twice, "api.example.org", [SECRET])[1] == []


def test_a_secret_with_a_header_goes_into_that_header_only() -> None:
    only = Brokered("TOKEN", ("api.example.org",), "x-api-key", PH, "V")
    head = f"GET /?q={PH} HTTP/1.1\r\nHost: api.example.org\r\nX-Api-Key: {PH}\r\nX-Other: {PH}\r\n\r\n"
    out, used = substitute(head.encode(), "api.example.org", [only])
    assert used == ["TOKEN"]
    assert b"X-Api-Key: V\r\n" in out and f"X-Other: {PH}".encode() in out and f"q={PH}".encode() in out


def test_values_are_sealed_with_a_key_file_outside_the_database(tmp_path: Path) -> None:
    key_file = tmp_path / "secrets.key"
    key = load_or_create_key(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and load_or_create_key(key_file) == key
    box = SecretBox(key)
    sealed = box.seal("t1", "TOKEN", "hunter2")
    assert b"hunter2" not in sealed and box.open("t1", "TOKEN", sealed) == "hunter2"
    with pytest.raises(RuntimeFailure):
        box.open("t2", "TOKEN", sealed)  # moved to another tenant's row: does not open
    with pytest.raises(RuntimeFailure):
        SecretBox(os.urandom(32)).open("t1", "TOKEN", sealed)
