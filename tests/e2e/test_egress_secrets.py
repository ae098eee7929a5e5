"""Secrets brokered at egress (docs/secrets.md), against the real server, crun and QEMU, with an
HTTPS server on the fake internet: the value reaches the secret's host and nothing else, and the
shell never holds it (environment, files, /proc, its own memory), through pause, resume, fork and
rotation. Values look like ``real<32 hex>`` so the shell can search for the shape without ever
being told the value; the test compares what it finds outside."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shells.domain.limits import EGRESS_MAX_CONNECTIONS_PER_SHELL
from shells.runtime.microvm.backend import MicrovmBackend
from shells.sdk import Shell, Shells
from tests.support.fake_https import FakeHttps
from tests.support.fake_internet import FakeInternet

from .harness import ServerProcess, running_server

MICROVM_MISSING = MicrovmBackend.available()
RUNTIMES = [
    "container",
    pytest.param(
        "microvm",
        marks=pytest.mark.skipif(MICROVM_MISSING is not None, reason=f"no microvm class: {MICROVM_MISSING}"),
    ),
]
API, OTHER = "api.fake.test", "other.fake.test"

CURL = (
    'curl -sS --max-time 30 --resolve {host}:443:{address} {extra} "https://{host}/x?key=${name}&n=1" '
    '-H "Authorization: Bearer ${name}" -H "X-Api-Key: ${name}"'
)
BASIC = 'curl -sS --max-time 30 --resolve {host}:443:{address} -u "me:${name}" "https://{host}/basic"'
SCAN = r"""
import hashlib, http.client, os, re, socket, ssl, sys
name, address = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context()
sock = socket.create_connection((address, 443), timeout=30)
conn = http.client.HTTPSConnection("api.fake.test", context=ctx)
conn.sock = ctx.wrap_socket(sock, server_hostname="api.fake.test")
conn.request("GET", "/mem", headers={"Authorization": "Bearer " + os.environ[name]})
print(conn.getresponse().read().decode().strip())
shape = re.compile(rb"real[0-9a-f]{32}")
found = set()
for line in open("/proc/self/maps"):
    span, perms = line.split()[:2]
    if perms[0] != "r" or "[vvar" in line or "[vsyscall" in line:
        continue
    lo, hi = (int(x, 16) for x in span.split("-"))
    try:
        with open("/proc/self/mem", "rb") as mem:
            mem.seek(lo)
            data = mem.read(hi - lo)
    except (OSError, OverflowError, ValueError):
        continue
    found.update(hashlib.sha256(m).hexdigest() for m in shape.findall(data))
print("\n".join(sorted(found)))
"""
LOOK = (
    "env; cat /proc/*/environ /proc/*/cmdline 2>/dev/null | tr '\\0' '\\n'; "
    "grep -rsohaE 'real[0-9a-f]{32}' /etc /root /tmp /workspace /var /home /usr/local /run 2>/dev/null; true"
)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture(scope="module")
def api(internet: FakeInternet) -> Iterator[FakeHttps]:
    with FakeHttps(internet) as server:
        yield server


@pytest.fixture(scope="module")
def egress_server(data_root: Path, api: FakeHttps) -> Iterator[ServerProcess]:
    env = {"SHELLS_EGRESS_CA_FILE": str(api.ca_file)}
    with running_server(data_root / "egress", warm_pool=0, env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def egress_client(egress_server: ServerProcess) -> Iterator[Shells]:
    with egress_server.client() as c:
        yield c


@pytest.fixture
def make(egress_client: Shells) -> Iterator[Callable[..., Shell]]:
    created: list[Shell] = []

    def make(runtime: str, **kwargs: Any) -> Shell:
        shell = egress_client.create("python", runtime=runtime, **kwargs)
        created.append(shell)
        return shell

    yield make
    for shell in created:
        shell.kill()


def run(shell: Shell, script: str, *args: str, stdin: str | None = None) -> str:
    out = shell.commands.run(["sh", "-c", script, "sh", *args], stdin=stdin, timeout=120)
    assert out.exit_code == 0, (out.stdout, out.stderr)
    return str(out.stdout)


def call_api(shell: Shell, api: FakeHttps, name: str) -> list[bytes]:
    """Bearer, a custom header and the query, then basic auth, to the secret's host; the heads the
    host received."""
    api.clear()
    assert run(shell, CURL.format(host=API, address=api.address, extra="", name=name)).strip() == "ok"
    assert run(shell, BASIC.format(host=API, address=api.address, name=name)).strip() == "ok"
    return api.heads()


def assert_never_inside(shell: Shell, api: FakeHttps, name: str, values: list[str]) -> None:
    seen = run(shell, LOOK)
    out = shell.commands.run(["python3", "-c", SCAN, name, api.address], timeout=120)
    assert out.exit_code == 0, out.stderr
    lines = str(out.stdout).split()
    assert lines[0] == "ok"
    for value in values:
        assert value not in seen
        assert digest(value) not in lines[1:]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_value_reaches_only_its_host_and_never_the_shell(
    runtime: str, make: Callable[..., Shell], egress_client: Shells, api: FakeHttps
) -> None:
    name = f"TOKEN_{secrets.token_hex(4).upper()}"
    value = "real" + secrets.token_hex(16)
    egress_client.secrets.create(name, value, [API])
    shell = make(runtime, network="internet", secrets=[name])
    placeholder = run(shell, f'printf %s "${name}"')
    assert placeholder.startswith("shells-secret-") and value not in placeholder

    heads = call_api(shell, api, name)
    assert len(heads) == 2
    first, basic = heads
    assert f"Authorization: Bearer {value}".encode() in first
    assert f"X-Api-Key: {value}".encode() in first
    assert f"key={value}&n=1".encode() in first
    assert b"Basic " + base64.b64encode(f"me:{value}".encode()) in basic
    assert placeholder.encode() not in first + basic

    # a host outside the list: TLS is not terminated (the shell verifies the real certificate
    # with the test CA only) and the placeholder arrives as it was sent
    api.clear()
    extra = "--cacert /workspace/fake-ca.pem"
    run(shell, "cat > /workspace/fake-ca.pem", stdin=api.ca_file.read_text())
    assert run(shell, CURL.format(host=OTHER, address=api.address, extra=extra, name=name)).strip() == "ok"
    (other,) = api.heads()
    assert f"Bearer {placeholder}".encode() in other and value.encode() not in other

    assert_never_inside(shell, api, name, [value])

    events = egress_client.audit(action="secret.use", shell=shell.id)
    assert events and all(e.details == {"host": API, "secret": name} for e in events)
    assert value not in repr(egress_client.audit(shell=shell.id))

    # the shell's processes end and come back (pause and resume where the class can pause, a
    # restart where it cannot), then a rotation: the next request carries the new value
    if runtime == "microvm":
        shell.pause()
        shell.resume()
    else:
        shell.restart()
    rotated = "real" + secrets.token_hex(16)
    egress_client.secrets.update(name, value=rotated)
    first, _ = call_api(shell, api, name)
    assert f"Bearer {rotated}".encode() in first

    if runtime == "microvm":  # a fork: same placeholder, same brokering, nothing leaked into it
        (child,) = shell.fork(1)
        try:
            assert run(child, f'printf %s "${name}"') == placeholder
            first, _ = call_api(child, api, name)
            assert f"Bearer {rotated}".encode() in first
            assert_never_inside(child, api, name, [value, rotated])
        finally:
            child.kill()

    # deleted: the proxy relays without decrypting (the shell sees the host's own certificate) and
    # the placeholder is all that leaves
    egress_client.secrets.delete(name)
    api.clear()
    assert run(shell, CURL.format(host=API, address=api.address, extra=extra, name=name)).strip() == "ok"
    (last,) = api.heads()
    assert f"Bearer {placeholder}".encode() in last


def test_secrets_refuse_bad_input_and_never_show_a_value(
    egress_server: ServerProcess, egress_client: Shells
) -> None:
    http = httpx.Client(
        base_url=egress_server.url, headers={"Authorization": f"Bearer {egress_server.token}"}
    )
    value = "real" + secrets.token_hex(16)
    for hosts in ([], ["*"], ["*."], ["198.51.100.20"], ["a.*.org"], "api.fake.test"):
        answer = http.post("/v1/secrets", json={"name": "BAD", "value": value, "hosts": hosts})
        assert answer.status_code == 400, (hosts, answer.text)
        assert answer.json()["error"]["code"] == "invalid_request"
        assert "hosts" in answer.text
    assert http.post("/v1/secrets", json={"name": "1BAD", "value": value, "hosts": [API]}).status_code == 400
    assert (
        http.post("/v1/secrets", json={"name": "OK", "value": value, "hosts": [API], "x": 1}).status_code
        == 400
    )
    created = http.post("/v1/secrets", json={"name": "KEEP", "value": value, "hosts": [API, "*.fake.test"]})
    assert created.status_code == 201, created.text
    assert http.post("/v1/secrets", json={"name": "KEEP", "value": value, "hosts": [API]}).status_code == 409
    try:
        for answer in (
            http.get("/v1/secrets"),
            http.get("/v1/secrets/KEEP"),
            http.put("/v1/secrets/KEEP", json={"hosts": [API]}),
        ):
            assert answer.status_code == 200 and value not in answer.text
        assert http.get("/v1/secrets/NOPE").json()["error"]["code"] == "secret_not_found"
        for network in ("sealed", "localhost"):
            answer = http.post(
                "/v1/shells", json={"language": "python", "network": network, "secrets": ["KEEP"]}
            )
            assert answer.status_code == 400 and "secrets" in answer.text
        answer = http.post(
            "/v1/shells", json={"language": "python", "network": "internet", "secrets": ["NOPE"]}
        )
        assert answer.status_code == 400 and "NOPE" in answer.text
        assert not [s for s in egress_client.list() if s.info.state != "deleted"]
        # sealed with a key file outside the database: the database holds no value
        key = egress_server.data_dir / "secrets.key"
        assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32
        assert value.encode() not in (egress_server.data_dir / "shells.db").read_bytes()
    finally:
        assert http.delete("/v1/secrets/KEEP").status_code == 204
        http.close()


def test_brokered_connections_end_when_the_shells_client_hangs_up(
    make: Callable[..., Shell], egress_client: Shells, api: FakeHttps
) -> None:
    """More requests, one after another, than a shell may hold through the proxy at once: each
    connection must end when the client is done, even with a host that waits for the client to
    hang up (TLS cannot pass a half-close on, so the proxy closes upstream)."""
    name = f"LOOP_{secrets.token_hex(4).upper()}"
    egress_client.secrets.create(name, "real" + secrets.token_hex(16), [API])
    try:
        shell = make("container", network="internet", secrets=[name])
        one = CURL.format(host=API, address=api.address, extra="-o /dev/null -w '%{http_code}\\n'", name=name)
        codes = run(shell, f"for i in $(seq {EGRESS_MAX_CONNECTIONS_PER_SHELL + 6}); do {one}; done").split()
        assert codes == ["200"] * (EGRESS_MAX_CONNECTIONS_PER_SHELL + 6)
    finally:
        egress_client.secrets.delete(name)


def test_a_shell_keeps_its_secrets_across_a_server_kill(
    make: Callable[..., Shell], egress_server: ServerProcess, egress_client: Shells, api: FakeHttps
) -> None:
    """kill -9 of the server: the shell runs on, its redirect stays in the kernel, and the next
    server's proxy serves it (the dataplane's records say it is brokered)."""
    name = f"KILL_{secrets.token_hex(4).upper()}"
    value = "real" + secrets.token_hex(16)
    egress_client.secrets.create(name, value, [API])
    try:
        shell = make("container", network="internet", secrets=[name])
        egress_server.kill9()
        egress_server.start()
        with egress_server.client() as again:
            first, _ = call_api(again.get(shell.id), api, name)
        assert f"Bearer {value}".encode() in first
    finally:
        egress_client.secrets.delete(name)
