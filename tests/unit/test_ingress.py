"""The ingress proxy against a real HTTP service inside a real loopback-only network namespace.

The service (``tests/support/http_service.py``) listens on 127.0.0.1 inside the netns, where the
host has no route to it; only the proxy, which makes its sockets inside the namespace, reaches it.
The service counts the requests it gets, so a refused request is proved never to have arrived.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from shells.domain.errors import BudgetExceeded, InvalidState, RuntimeFailure
from shells.runtime.network.httphead import MalformedHead, parse_request_head
from shells.runtime.network.ingress import (
    HEAD_LIMIT,
    Exposure,
    IngressProxy,
    MemoryExposedPorts,
    new_port_token,
    route_request,
    token_matches,
)
from tests.support.ready_process import ready_process
from tests.support.scratch_netns import scratch_netns


def _free_host_port() -> int:
    """A port nothing listens on in the host's netns, so reaching it there must fail."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


SERVICE_PORT = _free_host_port()
CLOSED_PORT = 1
WAIT_S = 10.0


@dataclass
class Shell:
    netns: Path


@pytest.fixture(scope="module")
def shell() -> Iterator[Shell]:
    """A loopback-only netns with the test service listening on 127.0.0.1:SERVICE_PORT inside it."""
    with scratch_netns(loopback=True, prefix="shells-test-ingress-") as path:
        service = [sys.executable, "-m", "tests.support.http_service", str(SERVICE_PORT)]
        with ready_process(["nsenter", f"--net={path}", *service]):
            yield Shell(path)


@dataclass
class Ingress:
    proxy: IngressProxy
    ports: MemoryExposedPorts
    token: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}"

    def host(self, shell_id: str, port: int = SERVICE_PORT) -> str:
        return f"{port}-{shell_id}.localhost:{self.proxy.port}"


@pytest.fixture
async def ingress(shell: Shell) -> AsyncIterator[Ingress]:
    token, token_hash = new_port_token()
    ports = MemoryExposedPorts()
    ports.expose("sh_private", SERVICE_PORT, Exposure(str(shell.netns), token_hash=token_hash))
    ports.expose("sh_public", SERVICE_PORT, Exposure(str(shell.netns), public=True))
    ports.expose("sh_closed", CLOSED_PORT, Exposure(str(shell.netns), public=True))
    ports.expose("sh_gone", SERVICE_PORT, Exposure(str(shell.netns.parent / "no-such-netns"), public=True))
    ports.expose("sh_vm", SERVICE_PORT, Exposure(str(shell.netns), address="127.0.0.2", public=True))
    ports.expose("sh_paused", SERVICE_PORT, Exposure(str(shell.netns), public=True, not_running="paused"))
    proxy = IngressProxy(ports)
    await proxy.start("127.0.0.1", 0)
    try:
        yield Ingress(proxy, ports, token)
    finally:
        await proxy.close()


async def _served(ingress: Ingress) -> int:
    """How many requests the service has answered so far (through the public exposure)."""
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{ingress.base}/sh_public/{SERVICE_PORT}/requests")
    count: int = answer.json()["count"]
    return count


def _error(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/json"
    code: str = response.json()["error"]["code"]
    return code


def _header(seen: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in seen["headers"] if k.lower() == name.lower()]


def test_the_service_is_unreachable_from_the_host_without_the_proxy(shell: Shell) -> None:
    with socket.socket() as sock:
        sock.settimeout(5)
        assert sock.connect_ex(("127.0.0.1", SERVICE_PORT)) == errno.ECONNREFUSED


@pytest.mark.anyio
async def test_with_the_token_header_the_request_reaches_the_service_without_the_token(
    ingress: Ingress,
) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.get(
            f"{ingress.base}/hello?x=1",
            headers={"Host": ingress.host("sh_private"), "X-Shells-Port-Token": ingress.token},
        )
    assert answer.status_code == 200
    seen = answer.json()
    assert seen["method"] == "GET" and seen["target"] == "/hello?x=1"
    assert _header(seen, "X-Shells-Port-Token") == []
    assert _header(seen, "X-Forwarded-For") == ["127.0.0.1"]
    assert _header(seen, "X-Forwarded-Host") == [ingress.host("sh_private")]
    assert _header(seen, "Connection") == ["close"]


@pytest.mark.anyio
async def test_curl_reaches_an_exposed_port_by_its_localhost_subdomain(ingress: Ingress) -> None:
    """The URL a person types: ``*.localhost`` needs no DNS set-up (curl resolves it to loopback)."""
    curl = await asyncio.create_subprocess_exec(
        *("curl", "-sS", "--max-time", "10", "-H", f"X-Shells-Port-Token: {ingress.token}"),
        f"http://{ingress.host('sh_private')}/from-curl",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await curl.communicate()
    assert curl.returncode == 0
    assert json.loads(out)["target"] == "/from-curl"


@pytest.mark.anyio
async def test_without_a_token_the_answer_is_401_and_nothing_reaches_the_service(ingress: Ingress) -> None:
    before = await _served(ingress)
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{ingress.base}/", headers={"Host": ingress.host("sh_private")})
        by_path = await client.get(f"{ingress.base}/sh_private/{SERVICE_PORT}/")
    assert answer.status_code == 401 and _error(answer) == "unauthenticated"
    assert "X-Shells-Port-Token" in answer.json()["error"]["message"]
    assert by_path.status_code == 401
    assert await _served(ingress) == before + 1  # only the count request itself


@pytest.mark.anyio
async def test_a_wrong_token_header_query_or_cookie_is_403_and_never_forwarded(ingress: Ingress) -> None:
    before = await _served(ingress)
    host = {"Host": ingress.host("sh_private")}
    async with httpx.AsyncClient() as client:
        header = await client.get(f"{ingress.base}/", headers={**host, "X-Shells-Port-Token": "nope"})
        query = await client.get(f"{ingress.base}/?shells_token=nope", headers=host)
        cookie = await client.get(f"{ingress.base}/", headers={**host, "Cookie": "shells_token=nope"})
        # A right cookie does not rescue a wrong header: the explicit one decides.
        both = await client.get(
            f"{ingress.base}/",
            headers={**host, "X-Shells-Port-Token": "nope", "Cookie": f"shells_token={ingress.token}"},
        )
    for answer in (header, query, cookie, both):
        assert answer.status_code == 403 and _error(answer) == "permission_denied"
    assert await _served(ingress) == before + 1


@pytest.mark.anyio
async def test_the_query_token_sets_a_host_scoped_httponly_cookie_that_then_admits(ingress: Ingress) -> None:
    host = {"Host": ingress.host("sh_private")}
    async with httpx.AsyncClient() as client:
        first = await client.get(f"{ingress.base}/app?a=1&shells_token={ingress.token}&b=2", headers=host)
        assert first.status_code == 307
        assert first.headers["location"] == "/app?a=1&b=2"
        cookie = first.headers["set-cookie"]
        assert cookie.startswith(f"shells_token={ingress.token};")
        assert "HttpOnly" in cookie and "Path=/;" in cookie and "Domain" not in cookie
        follow = await client.get(
            f"{ingress.base}/app?a=1&b=2",
            headers={**host, "Cookie": f"theme=dark; shells_token={ingress.token}"},
        )
    assert follow.status_code == 200
    seen = follow.json()
    assert seen["target"] == "/app?a=1&b=2"
    assert _header(seen, "Cookie") == ["theme=dark"]  # the app's cookies pass, ours does not


@pytest.mark.anyio
async def test_a_public_port_needs_no_token(ingress: Ingress) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{ingress.base}/open", headers={"Host": ingress.host("sh_public")})
    assert answer.status_code == 200 and answer.json()["target"] == "/open"


@pytest.mark.anyio
async def test_the_path_prefix_form_strips_the_prefix_and_scopes_the_cookie_to_it(ingress: Ingress) -> None:
    prefix = f"/sh_private/{SERVICE_PORT}"
    async with httpx.AsyncClient() as client:
        answer = await client.get(
            f"{ingress.base}{prefix}/deep/page?q=1", headers={"X-Shells-Port-Token": ingress.token}
        )
        bare = await client.get(f"{ingress.base}/sh_public/{SERVICE_PORT}")
        redirect = await client.get(f"{ingress.base}{prefix}/x?shells_token={ingress.token}")
    assert answer.status_code == 200
    seen = answer.json()
    assert seen["target"] == "/deep/page?q=1"
    assert _header(seen, "X-Forwarded-Prefix") == [prefix]
    assert bare.json()["target"] == "/"
    assert redirect.status_code == 307 and redirect.headers["location"] == f"{prefix}/x"
    assert f"Path={prefix};" in redirect.headers["set-cookie"]


@pytest.mark.anyio
async def test_unknown_ports_and_unroutable_requests_are_404(ingress: Ingress) -> None:
    async with httpx.AsyncClient() as client:
        other_port = await client.get(f"{ingress.base}/", headers={"Host": ingress.host("sh_public", 9999)})
        other_shell = await client.get(f"{ingress.base}/sh_nobody/{SERVICE_PORT}/")
        nowhere = await client.get(f"{ingress.base}/favicon.ico")
    assert other_port.status_code == 404 and _error(other_port) == "port_not_exposed"
    assert other_shell.status_code == 404 and _error(other_shell) == "port_not_exposed"
    assert nowhere.status_code == 404 and _error(nowhere) == "not_found"


@pytest.mark.anyio
async def test_a_port_nobody_listens_on_or_a_vanished_netns_is_502(ingress: Ingress) -> None:
    async with httpx.AsyncClient() as client:
        closed = await client.get(
            f"{ingress.base}/", headers={"Host": ingress.host("sh_closed", CLOSED_PORT)}
        )
        gone = await client.get(f"{ingress.base}/", headers={"Host": ingress.host("sh_gone")})
    assert closed.status_code == 502 and _error(closed) == "port_unreachable"
    assert gone.status_code == 502 and _error(gone) == "port_unreachable"


@pytest.mark.anyio
async def test_the_proxy_connects_to_the_exposures_address(ingress: Ingress) -> None:
    """The service listens on 127.0.0.1 only; an exposure elsewhere (a VM's guest) is not it."""
    before = await _served(ingress)
    async with httpx.AsyncClient() as client:
        elsewhere = await client.get(f"{ingress.base}/", headers={"Host": ingress.host("sh_vm")})
    assert elsewhere.status_code == 502 and _error(elsewhere) == "port_unreachable"
    assert "0.0.0.0" in elsewhere.json()["error"]["message"]
    assert "127.0.0.1" not in elsewhere.json()["error"]["message"]
    assert await _served(ingress) == before + 1  # only the count request itself


@pytest.mark.anyio
async def test_a_port_of_a_shell_that_is_not_running_is_409_and_never_reaches_it(ingress: Ingress) -> None:
    before = await _served(ingress)
    async with httpx.AsyncClient() as client:
        paused = await client.get(f"{ingress.base}/", headers={"Host": ingress.host("sh_paused")})
    assert paused.status_code == 409 and _error(paused) == "invalid_state"
    assert "paused" in paused.json()["error"]["message"]
    assert await _served(ingress) == before + 1


async def _raw_exchange(ingress: Ingress, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", ingress.proxy.port)
    try:
        writer.write(data)
        writer.write_eof()
        await writer.drain()
        async with asyncio.timeout(WAIT_S):
            return await reader.read()
    finally:
        writer.close()


@pytest.mark.anyio
async def test_malformed_and_oversized_heads_are_refused(ingress: Ingress) -> None:
    smuggle = (
        f"POST / HTTP/1.1\r\nHost: {ingress.host('sh_public')}\r\nContent-Length: 4\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    folded = f"GET / HTTP/1.1\r\nHost: {ingress.host('sh_public')}\r\nX-A: 1\r\n  continued\r\n\r\n"
    huge = f"GET / HTTP/1.1\r\nHost: {ingress.host('sh_public')}\r\nX-Big: {'a' * HEAD_LIMIT}\r\n\r\n"
    for request, status in ((smuggle, 400), (folded, 400), ("NOT HTTP\r\n\r\n", 400), (huge, 431)):
        answer = await _raw_exchange(ingress, request.encode())
        assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:80]
    assert await _raw_exchange(ingress, b"\x16\x03\x01garbage-without-an-end") == b""
    # The listener is still serving.
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{ingress.base}/", headers={"Host": ingress.host("sh_public")})).is_success


async def _upgraded(
    ingress: Ingress, shell_id: str, *headers: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection on which the service has answered ``101 Switching Protocols``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", ingress.proxy.port)
    lines = [
        "GET /ws HTTP/1.1",
        f"Host: {ingress.host(shell_id)}",
        *headers,
        "Connection: Upgrade",
        "Upgrade: echo",
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    async with asyncio.timeout(WAIT_S):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return reader, writer


@pytest.mark.anyio
async def test_an_upgraded_connection_is_a_two_way_byte_pipe(ingress: Ingress) -> None:
    reader, writer = await _upgraded(ingress, "sh_private", f"X-Shells-Port-Token: {ingress.token}")
    try:
        async with asyncio.timeout(WAIT_S):
            for i in range(20):
                message = f"message {i} ".encode() * (i + 1)
                writer.write(message)
                await writer.drain()
                assert await reader.readexactly(len(message)) == message
            writer.write_eof()
            assert await reader.read() == b""  # the service saw our EOF and closed
    finally:
        writer.close()


@pytest.mark.anyio
async def test_a_large_body_streams_both_ways_at_once(ingress: Ingress) -> None:
    """The service echoes while it receives, so this only finishes if the proxy moves both
    directions at the same time with bounded buffers (a client that first sends everything would
    deadlock against any echo service, so this one writes and reads concurrently)."""
    size = 48 << 20
    block = bytes(range(256)) * 4096  # 1 MiB
    reader, writer = await asyncio.open_connection("127.0.0.1", ingress.proxy.port)

    async def send() -> None:
        writer.write(
            (
                f"POST /echo HTTP/1.1\r\nHost: {ingress.host('sh_private')}\r\n"
                f"X-Shells-Port-Token: {ingress.token}\r\nContent-Length: {size}\r\n\r\n"
            ).encode()
        )
        for _ in range(size // len(block)):
            writer.write(block)
            await writer.drain()

    digest = hashlib.sha256()
    try:
        async with asyncio.timeout(60):
            sending = asyncio.create_task(send())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            received = 0
            while chunk := await reader.read(1 << 16):
                digest.update(chunk)
                received += len(chunk)
            await sending
    finally:
        writer.close()
    assert received == size
    assert digest.hexdigest() == hashlib.sha256(block * (size // len(block))).hexdigest()


@pytest.mark.anyio
async def test_a_large_download_streams(ingress: Ingress) -> None:
    size = 64 << 20
    received = 0
    async with (
        httpx.AsyncClient(timeout=60) as client,
        client.stream("GET", f"{ingress.base}/sh_public/{SERVICE_PORT}/stream?bytes={size}") as answer,
    ):
        async for chunk in answer.aiter_raw():
            received += len(chunk)
    assert received == size


@pytest.mark.anyio
async def test_close_cuts_open_connections(ingress: Ingress) -> None:
    reader, writer = await _upgraded(ingress, "sh_public")
    try:
        async with asyncio.timeout(WAIT_S):
            await ingress.proxy.close()
            assert await reader.read() == b""
    finally:
        writer.close()


# Pure logic ---------------------------------------------------------------------------------------


def test_routes_by_host_label_or_path_prefix() -> None:
    def route(target: str, host: str | None) -> tuple[str, int, str, str] | None:
        headers = [("Host", host)] if host is not None else []
        found = route_request(
            parse_request_head(
                f"GET {target} HTTP/1.1\r\n".encode()
                + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers)
                + b"\r\n"
            ),
            "shells.example",
        )
        return None if found is None else (found.shell_id, found.port, found.target, found.prefix)

    assert route("/a?b", "8000-sh_abc.shells.example") == ("sh_abc", 8000, "/a?b", "")
    assert route("/a", "8000-SH_ABC.Shells.Example:8443") == ("sh_abc", 8000, "/a", "")
    assert route("/sh_abc/3000/x/y?z=1", "shells.example") == ("sh_abc", 3000, "/x/y?z=1", "/sh_abc/3000")
    assert route("/sh_abc/3000?z=1", None) == ("sh_abc", 3000, "/?z=1", "/sh_abc/3000")
    assert route("/sh_abc/3000", "a.8000-sh_abc.shells.example") == ("sh_abc", 3000, "/", "/sh_abc/3000")
    assert route("/", "70000-sh_abc.shells.example") is None
    assert route("/sh_abc/0/", "other.example") is None
    assert route("/sh_abc/http/", "other.example") is None
    assert route("/", "8000-sh_abc.shells.example.evil") is None


def test_head_parser_refuses_what_could_mean_two_things() -> None:
    bad = [
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n",
        b"GET http://a/ HTTP/1.1\r\n\r\n",
        b"GET / HTTP/2\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n",
    ]
    for raw in bad:
        with pytest.raises(MalformedHead):
            parse_request_head(raw)
    head = parse_request_head(b"GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: x\r\n\r\n")
    assert head.wants_upgrade()


def test_tokens_are_random_and_checked_against_their_hash_only() -> None:
    token, token_hash = new_port_token()
    other, _ = new_port_token()
    assert token != other and len(token) >= 43 and token not in token_hash
    assert token_matches(token, token_hash)
    assert not token_matches(other, token_hash)
    assert not token_matches("", token_hash)


class _WakingPorts(MemoryExposedPorts):
    """Exposures whose shell wakes: ``wake`` counts its calls, takes a moment like a resume, and
    then shows the port running, or raises what it was told to."""

    def __init__(self, fail: Exception | None = None) -> None:
        super().__init__()
        self.wakes = 0
        self.fail = fail

    async def wake(self, shell_id: str, port: int) -> Exposure | None:
        self.wakes += 1
        await asyncio.sleep(0.2)
        if self.fail is not None:
            raise self.fail
        exposure = self.lookup(shell_id, port)
        if exposure is not None and exposure.wakes:
            exposure = replace(exposure, not_running=None, wakes=False)
            self.expose(shell_id, port, exposure)
        return exposure


@pytest.mark.anyio
async def test_a_paused_port_that_wakes_is_resumed_and_the_request_answered(shell: Shell) -> None:
    token, token_hash = new_port_token()
    ports = _WakingPorts()
    asleep = Exposure(str(shell.netns), token_hash=token_hash, not_running="paused", wakes=True)
    ports.expose("sh_asleep", SERVICE_PORT, asleep)
    proxy = IngressProxy(ports)
    await proxy.start("127.0.0.1", 0)
    host = {"Host": f"{SERVICE_PORT}-sh_asleep.localhost:{proxy.port}"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{proxy.port}") as client:
            assert (await client.get("/", headers=host)).status_code == 401
            assert ports.wakes == 0  # a request that may not reach the port wakes nothing
            answer = await client.get("/", headers={**host, "X-Shells-Port-Token": token})
            assert answer.status_code == 200 and ports.wakes == 1
    finally:
        await proxy.close()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fail", "status", "code"),
    [
        (BudgetExceeded("The monthly budget cap is reached."), 403, "budget_exceeded"),
        (RuntimeFailure("qemu did not start"), 502, "wake_failed"),
        (InvalidState("The shell is stopped."), 409, "invalid_state"),
    ],
)
async def test_a_wake_that_fails_is_answered_with_its_reason(
    shell: Shell, fail: Exception, status: int, code: str
) -> None:
    ports = _WakingPorts(fail)
    ports.expose(
        "sh_asleep", SERVICE_PORT, Exposure(str(shell.netns), public=True, not_running="paused", wakes=True)
    )
    proxy = IngressProxy(ports)
    await proxy.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{proxy.port}/sh_asleep/{SERVICE_PORT}/")
        assert answer.status_code == status and _error(answer) == code
    finally:
        await proxy.close()
