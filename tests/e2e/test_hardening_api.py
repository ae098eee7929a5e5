"""Issue 17, items 4, 14, 15 and 16 against the real server: an output flood with ``wait=true``, a 500
followed by another request on the same connection, integers past 64 bits, SIGTERM with an endless
stream open, an env no exec could pass, requests during a restart, a body shorter than its length."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shells.domain.limits import BODY_IDLE_TIMEOUT_S, WAIT_OUTPUT_CAP_BYTES

from .harness import ServerProcess, running_server
from .rest import ShellMaker, error_of, exec_wait, rest_client

MIB = 1024 * 1024
SQLITE_BUSY_S = 5.0  # the store's busy_timeout


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    """The largest resident size a process reaches while the block runs, sampled every 5 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = self.peak = _rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_flood_with_wait_is_truncated_and_the_server_stays_small(
    server: ServerProcess, api: httpx.Client, make_rest_shell: ShellMaker
) -> None:
    sh = make_rest_shell(language="bash")
    assert server.proc is not None
    with PeakRss(server.proc.pid) as rss:
        answer = exec_wait(api, sh["id"], "yes | head -c 500M", timeout_s=300)
    growth = rss.peak - rss.before
    print(f"server RSS {rss.before / MIB:.0f} MiB, peak +{growth / MIB:.0f} MiB")
    assert growth < 100 * MIB, f"the server grew by {growth / MIB:.0f} MiB for one command"
    assert answer["truncated"] is True
    assert len(answer["stdout"]) == WAIT_OUTPUT_CAP_BYTES
    assert answer["stdout"].startswith("y\ny\n")


@pytest.fixture
def db_locked(server: ServerProcess) -> Iterator[sqlite3.Connection]:
    """The store's database with a write lock held by another process: the server's writes fail."""
    db = sqlite3.connect(server.data_dir / "shells.db", timeout=30, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    finally:
        db.rollback()
        db.close()


def test_a_500_keeps_the_connection_usable(server: ServerProcess, db_locked: sqlite3.Connection) -> None:
    """A real unexpected failure (the database locked from outside: the store raises, nothing maps
    it), then an unrelated request on the same keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=4 * SQLITE_BUSY_S + 10)
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    try:
        conn.request("POST", "/v1/tenants", body=json.dumps({"name": "locked-out"}), headers=headers)
        first = conn.getresponse()
        body = json.loads(first.read())
        assert first.status == 500, body
        assert body["error"]["code"] == "runtime_failure" and "request_id" in body["error"]["details"]
        sock = conn.sock
        db_locked.rollback()
        conn.request("GET", "/v1/info", headers=headers)
        second = conn.getresponse()
        assert second.status == 200 and "version" in json.loads(second.read())
        assert conn.sock is sock, "the client had to reconnect"
    finally:
        conn.close()


def test_integers_past_64_bits_are_400(api: httpx.Client, make_rest_shell: ShellMaker) -> None:
    sh = make_rest_shell(language="bash")
    huge = "99999999999999999999"
    for path in (f"/v1/shells/{sh['id']}/events", "/v1/audit"):
        error_of(api.get(path, params={"after": huge}), 400, "invalid_request")
        error_of(api.get(path, params={"limit": "-1"}), 400, "invalid_request")
        assert api.get(path, params={"after": str(2**63 - 1)}).status_code == 200
    error_of(api.get("/v1/events/stream", params={"after": huge}), 400, "invalid_request")
    error_of(api.get("/v1/events/stream", headers={"Last-Event-ID": huge}), 400, "invalid_request")
    quotas = {"name": "bigint", "quotas": {"max_shells": int(huge) ** 20}}
    error_of(api.post("/v1/tenants", json=quotas), 400, "invalid_request")
    logs = api.post(f"/v1/shells/{sh['id']}/actions/logs", json={"max_bytes": "lots"})
    error_of(logs, 400, "invalid_request")


def test_an_env_no_exec_could_pass_is_refused_at_create(api: httpx.Client) -> None:
    for env in ({"A\u0000B": "x"}, {"A=B": "x"}, {"": "x"}, {"A": "x\u0000y"}):
        r = api.post("/v1/shells", json={"language": "bash", "env": env})
        if r.status_code == 201:
            api.delete(f"/v1/shells/{r.json()['id']}")
        assert "'env'" in error_of(r, 400, "invalid_request")["message"]


def _restart(api: httpx.Client, shell_id: str, into: dict[str, Any]) -> None:
    into["answer"] = api.post(f"/v1/shells/{shell_id}/actions/restart", json={})
    into["ended"] = time.monotonic()


def test_requests_during_a_restart_wait_for_it(api: httpx.Client, make_rest_shell: ShellMaker) -> None:
    sh = make_rest_shell(language="bash")
    assert exec_wait(api, sh["id"], "echo before")["stdout"] == "before\n"
    # A restart takes about 0.1 s on a quiet host: each try sends the exec a little sooner after it,
    # until one is sent while the restart still runs (else nothing would be tested).
    for lead_s in (0.05, 0.02, 0.01, 0.005, 0.0):
        restart: dict[str, Any] = {}
        thread = threading.Thread(target=_restart, args=(api, sh["id"], restart))
        thread.start()
        time.sleep(lead_s)
        sent = time.monotonic()
        body = {"command": "echo during"}
        during = api.post(f"/v1/shells/{sh['id']}/exec", params={"wait": "true"}, json=body)
        thread.join()
        assert restart["answer"].status_code == 200, restart["answer"].text
        assert during.status_code == 200, during.text
        assert during.json()["stdout"] == "during\n"
        if sent < restart["ended"]:
            return
    raise AssertionError("every restart ended before its exec was sent: nothing was tested")


def _partial_request(port: int, request_line: str, token: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=BODY_IDLE_TIMEOUT_S + 30)
    head = (
        f"{request_line} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        "Content-Length: 100\r\n\r\n"
    )
    sock.sendall(head.encode() + b'{"name": ')  # 9 of the 100 bytes promised
    return sock


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_body_shorter_than_its_length_is_408(server: ServerProcess, make_rest_shell: ShellMaker) -> None:
    sh = make_rest_shell(language="bash")
    json_body = _partial_request(server.port, "POST /v1/tenants", server.token)
    upload = _partial_request(server.port, f"PUT /v1/shells/{sh['id']}/files?path=/workspace/f", server.token)
    mcp = _partial_request(server.port, "POST /api/agent/invoke", server.token)
    started = time.monotonic()
    try:
        for sock in (json_body, upload, mcp):
            answer = _read_all(sock)  # the server answers, then closes the connection
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
            assert b'"request_timeout"' in answer
    finally:
        for sock in (json_body, upload, mcp):
            sock.close()
    assert time.monotonic() - started < BODY_IDLE_TIMEOUT_S + 15
    with rest_client(server) as api:
        listing = api.get(f"/v1/shells/{sh['id']}/files/list", params={"path": "/workspace"}).json()
        assert [e["name"] for e in listing["entries"] if e["name"] == "f"] == []


GRACE_S = 3.0


def test_sigterm_ends_an_endless_stream_within_its_grace(data_root: Path) -> None:
    env = {"SHELLS_SHUTDOWN_GRACE_S": str(GRACE_S)}
    with running_server(data_root / "drain", warm_pool=0, env=env) as server:
        assert server.proc is not None
        try:
            _stream_through_sigterm(server)
        finally:
            if server.proc is not None and server.proc.poll() is None:
                server.kill9()


def _stream_through_sigterm(server: ServerProcess) -> None:
    assert server.proc is not None
    with rest_client(server) as api:
        shell_id = api.post("/v1/shells", json={"language": "bash"}).json()["id"]
        lines: list[dict[str, Any]] = []
        with api.stream("POST", f"/v1/shells/{shell_id}/exec", json={"command": "tail -f /dev/null"}) as r:
            assert r.status_code == 200
            stream = r.iter_lines()
            lines.append(json.loads(next(stream)))
            assert lines[0]["type"] == "started"
            signalled = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            with httpx.Client(base_url=server.url, timeout=5) as fresh:
                drained = fresh.get("/v1/info")
            assert drained.status_code == 503, drained.text
            assert drained.json()["error"]["code"] == "shutting_down"
            assert int(drained.headers["retry-after"]) >= 1
            lines += [json.loads(line) for line in stream if line]
        ended = time.monotonic() - signalled
    assert lines[-1]["type"] == "error" and lines[-1]["error"]["code"] == "shutting_down", lines
    assert GRACE_S - 0.5 < ended < GRACE_S + 5, ended
    server.proc.wait(timeout=GRACE_S + 15)
    print(
        f"stream ended {ended:.1f} s after SIGTERM; server exited {time.monotonic() - signalled:.1f} s after"
    )
