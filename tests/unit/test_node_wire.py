"""The node RPC's authentication (``node.wire``) and value codec (``node.codec``) on their own."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network

import pytest

from shells.domain.errors import ShellNotFound
from shells.domain.execution import ExecExit, ExecSpec, OutputChunk, WindowSize
from shells.domain.isolation import Runtime
from shells.domain.network import NetworkAccess, NetworkMode, PrivateNetwork
from shells.domain.shapes import get_shape
from shells.domain.templates import TemplateKind, TemplateMeta
from shells.node.codec import decode, dumps, encode, loads
from shells.node.wire import DOWN, UP, Signer, Unauthenticated
from shells.runtime.backend import HostInventory, ShellSpec

SECRET = b"s" * 40


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_signed_request_verifies_once() -> None:
    signer = Signer(SECRET)
    headers = signer.sign("POST", "/v1/call/container/exec", b"body")
    nonce = signer.verify("POST", "/v1/call/container/exec", headers, b"body")
    assert nonce == headers["x-shells-nonce"]
    with pytest.raises(Unauthenticated, match="replayed"):
        signer.verify("POST", "/v1/call/container/exec", headers, b"body")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/call/container/exec", b"bodY"),
        ("POST", "/v1/call/container/destroy", b"body"),
        ("GET", "/v1/call/container/exec", b"body"),
    ],
)
def test_any_change_to_a_signed_request_is_refused(method: str, path: str, body: bytes) -> None:
    headers = Signer(SECRET).sign("POST", "/v1/call/container/exec", b"body")
    with pytest.raises(Unauthenticated, match="bad signature"):
        Signer(SECRET).verify(method, path, headers, body)


def test_the_wrong_secret_and_no_signature_are_refused() -> None:
    headers = Signer(b"t" * 40).sign("POST", "/p", b"")
    with pytest.raises(Unauthenticated, match="bad signature"):
        Signer(SECRET).verify("POST", "/p", headers, b"")
    with pytest.raises(Unauthenticated, match="unsigned"):
        Signer(SECRET).verify("POST", "/p", {}, b"")


def test_a_request_outside_the_window_is_refused_and_nonces_age_out() -> None:
    clock = Clock()
    signer = Signer(SECRET, clock)
    old = signer.sign("POST", "/p", b"")
    clock.now += 31
    with pytest.raises(Unauthenticated, match="stale"):
        signer.verify("POST", "/p", old, b"")
    fresh = signer.sign("POST", "/p", b"")
    signer.verify("POST", "/p", fresh, b"")
    clock.now += 61  # remembered for twice the window, by when the request itself is long stale
    signer.verify("POST", "/p", signer.sign("POST", "/p", b""), b"")
    assert len(signer._seen) == 1


def test_frames_are_bound_to_their_call_direction_and_place() -> None:
    signer = Signer(SECRET)
    line = signer.frame(DOWN, "a" * 32, 0, b'{"k":"r"}')
    assert signer.open(DOWN, "a" * 32, 0, line) == b'{"k":"r"}'
    for direction, nonce, seq, raw in [
        (UP, "a" * 32, 0, line),  # reflected back the other way
        (DOWN, "b" * 32, 0, line),  # replayed to another call
        (DOWN, "a" * 32, 1, line),  # moved
        (DOWN, "a" * 32, 0, line.replace(b'"r"', b'"x"')),  # tampered
        (DOWN, "a" * 32, 0, b'{"k":"r"}'),  # unsigned
    ]:
        with pytest.raises(Unauthenticated):
            signer.open(direction, nonce, seq, raw)


def test_the_contract_values_cross_unchanged() -> None:
    spec = ShellSpec(
        "sh_1",
        "python:1",
        get_shape("s-1vcpu-1gb"),
        NetworkAccess(NetworkMode.INTERNET, ("example.com:443",)),
        networks=(PrivateNetwork("net_1", "lab", IPv4Network("10.9.0.0/24")),),
    )
    meta = TemplateMeta("python:1", TemplateKind.BUILTIN, "base:1", "abc", created_at=datetime.now(UTC))
    values = [
        spec,
        ExecSpec(argv=("sh", "-c", "true"), stdin=b"\x00\xff", pty=WindowSize(80, 24)),
        OutputChunk("stdout", b"\x00hi"),
        ExecExit(3, timed_out=True),
        meta,
        HostInventory(running={"a"}, snapshots={"s"}),
        {"a": IPv4Address("10.0.0.1")},
        (Runtime.CONTAINER, None, 1.5, [True]),
    ]
    for value in values:
        assert loads(dumps(value)) == value
    assert loads(dumps(spec)).network.rules == spec.network.rules


def test_errors_cross_as_their_own_class() -> None:
    error = loads(dumps(ShellNotFound("no such shell", {"shell": "sh_1"})))
    assert isinstance(error, ShellNotFound)
    assert (error.message, error.details) == ("no such shell", {"shell": "sh_1"})


def test_only_wire_types_decode() -> None:
    with pytest.raises(ValueError, match="not a node wire type"):
        decode({"$o": "Settings", "f": {}})
    with pytest.raises(ValueError, match="unknown node wire tag"):
        decode({"$x": 1})
    with pytest.raises(TypeError):
        encode(object())
    assert json.loads(dumps(b"x")) == {"$b": "eA=="}
