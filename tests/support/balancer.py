"""The local cluster's load balancer: HAProxy (Debian's ``haproxy``) on a loopback port in front of
the control-plane replicas, standing for what a real cluster puts there (a Kubernetes Service, and
the Ingress or cloud load balancer in front of it).

It proxies HTTP request by request (``mode http``), so a client's kept-alive connection is not tied
to one replica: each request goes to the replica with the fewest open connections, WebSocket
upgrades (terminals, MCP) become tunnels, and streamed answers (exec streams, NDJSON, the SSE event
stream) pass through unbuffered. Every replica is health-checked with ``GET /v1/info`` (no record,
no token) every half second; two failed checks, or one connection refused to live traffic, take it
out, and two good checks put it back. A request whose connection to a replica is refused goes to
another replica, so nothing is lost in the moment before the checks see a replica die. A request
the dying replica had already taken ends as it would without the balancer (a cut stream), or, if no
answer had started, as ``502 unavailable``; with no replica up the answer is ``503 unavailable``:
both in Shells's error format, so the SDK raises ``Unavailable``. The idle timeouts are a day: the
balancer cuts nothing a replica would not. One thread (it proxies for one machine's clients, and
the machine's cores are the replicas'), and idle connections to the replicas are reused by any
client's request: each request carries its own token, nothing is bound to a connection.

The process runs in the foreground of its own context manager; ``servers()`` reads its state from
its admin socket (``show stat``)."""

from __future__ import annotations

import csv
import io
import json
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .processes import end

CHECK_INTERVAL_MS = 500
FALL = 2
"""Failed checks that take a replica out: a dead replica is out within ``FALL`` intervals."""
RISE = 2
IDLE_TIMEOUT = "24h"
START_TIMEOUT_S = 15.0
BACKEND = "replicas"
ERRORS = {
    502: ("Bad Gateway", "unavailable", "The control-plane replica that took this request stopped "
          "before it answered; it may have run. Send it again only if running it twice is harmless."),
    503: ("Service Unavailable", "unavailable", "No control-plane replica is up behind the load "
          "balancer; retry in a few seconds."),
    504: ("Gateway Timeout", "timeout", "The control-plane replica did not answer in time."),
}  # fmt: skip
"""The answers the balancer gives itself: Shells's error body, so clients raise typed errors."""


def haproxy() -> str | None:
    return shutil.which("haproxy", path=f"{os.environ.get('PATH', '')}:/usr/sbin")


def missing() -> str | None:
    """Why no balancer can run here, or None."""
    if haproxy() is None:
        return "the local cluster's load balancer needs haproxy (run scripts/install-system-deps.sh)"
    return None


@dataclass(frozen=True)
class ServerState:
    status: str
    """``UP``, ``DOWN``, or a transition (``UP 1/2``, ``DOWN 1/2``), as HAProxy names them."""
    sessions: int
    """Requests (and tunnels) it has been sent since the balancer started."""
    current: int
    """Requests (and tunnels) it is serving now."""


@dataclass
class Balancer:
    root: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def socket_path(self) -> Path:
        return self.root / "admin.sock"

    def servers(self) -> dict[str, ServerState]:
        """Each replica's state, by its name (``control-1``...)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.socket_path))
            s.sendall(b"show stat\n")
            raw = b""
            while chunk := s.recv(65536):
                raw += chunk
        rows = csv.DictReader(io.StringIO(raw.decode().removeprefix("# ")))
        return {
            row["svname"]: ServerState(row["status"], int(row["stot"] or 0), int(row["scur"] or 0))
            for row in rows
            if row["pxname"] == BACKEND and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def wait_for(self, name: str, status: str, timeout_s: float) -> float:
        """Seconds until replica ``name`` is ``status`` (``UP`` or ``DOWN``); fails after ``timeout_s``."""
        start = time.monotonic()
        while (now := self.servers()[name].status) != status:
            assert time.monotonic() - start < timeout_s, f"{name} is {now}, not {status}, after {timeout_s} s"
            time.sleep(0.05)
        return time.monotonic() - start

    def log_tail(self) -> str:
        path = self.root / "haproxy.log"
        return path.read_bytes()[-3000:].decode(errors="replace") if path.exists() else ""


def config(port: int, backends: Mapping[str, str], root: Path) -> str:
    """HAProxy's configuration: ``backends`` maps each replica's name to its ``host:port``."""
    user = "    user haproxy\n    group haproxy\n" if _has_user("haproxy") else ""
    servers = "".join(f"    server {name} {address} check\n" for name, address in backends.items())
    errorfiles = "".join(f"    errorfile {status} {root / f'{status}.http'}\n" for status in ERRORS)
    return f"""global
    stats socket {root / "admin.sock"} mode 600 level operator
    maxconn 4096
    nbthread 1
{user}
defaults
    mode http
    http-reuse always
    timeout connect 2s
    timeout http-request 30s
    timeout http-keep-alive 60s
    timeout client {IDLE_TIMEOUT}
    timeout server {IDLE_TIMEOUT}
    timeout tunnel {IDLE_TIMEOUT}
    retries 3
    option redispatch 1
{errorfiles}
frontend shells
    bind 127.0.0.1:{port}
    default_backend {BACKEND}

backend {BACKEND}
    balance leastconn
    option httpchk GET /v1/info
    http-check expect status 200
    default-server inter {CHECK_INTERVAL_MS} fastinter {CHECK_INTERVAL_MS // 2} fall {FALL} rise {RISE} observe layer4 error-limit 1 on-error fastinter
{servers}"""  # noqa: E501


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _error_file(status: int) -> bytes:
    reason, code, message = ERRORS[status]
    body = json.dumps({"error": {"code": code, "message": message, "details": {}}}).encode()
    retry = "Retry-After: 1\r\n" if status == 503 else ""
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nCache-Control: no-cache\r\n"
        f"{retry}Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@contextmanager
def balancer(root: Path, port: int, backends: Mapping[str, str]) -> Iterator[Balancer]:
    """HAProxy on ``127.0.0.1:port`` in front of ``backends``, yielded once every replica is up;
    stopped afterwards."""
    binary = haproxy()
    assert binary is not None, missing()
    root.mkdir(parents=True, exist_ok=True)
    for status in ERRORS:
        (root / f"{status}.http").write_bytes(_error_file(status))
    cfg = root / "haproxy.cfg"
    cfg.write_text(config(port, backends, root), encoding="utf-8")
    with (root / "haproxy.log").open("ab") as log:
        proc = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    running = Balancer(root, port, proc)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _all_up(running, backends):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the load balancer did not start:\n{running.log_tail()}")
            time.sleep(0.1)
        yield running
    finally:
        end(proc, 10)


def _all_up(running: Balancer, backends: Mapping[str, str]) -> bool:
    try:
        states = running.servers()
    except OSError:
        return False
    return all(states.get(name, ServerState("", 0, 0)).status == "UP" for name in backends)
